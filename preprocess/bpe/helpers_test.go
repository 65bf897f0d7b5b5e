package bpe

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// bpeDir is OFA's BPE data: $OFASERVE_BPE_DIR, or shared/ofa-bpe beside the
// repository root.
func bpeDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("OFASERVE_BPE_DIR"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	d := filepath.Join(dir, "..", "shared", "ofa-bpe")
	if _, err := os.Stat(filepath.Join(d, "encoder.json")); err != nil {
		t.Fatalf("OFA BPE files not found (%v); set OFASERVE_BPE_DIR", err)
	}
	return d
}

func pythonBin() string {
	if p := os.Getenv("OFASERVE_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// runJSON runs a reference program with in as JSON on stdin and decodes its
// JSON stdout into out.
func runJSON(t testing.TB, in, out any, name string, args ...string) {
	t.Helper()
	var stdin bytes.Buffer
	if in != nil {
		if err := json.NewEncoder(&stdin).Encode(in); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin = &stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s %v: bad JSON output: %v", name, args, err)
	}
}

var (
	loadMu     sync.Mutex
	loadedGPT2 *Tokenizer
	loadedOFA  *Tokenizer
)

// gpt2Tokenizer yields GPT-2 ids (encoder.json read as a HF vocab.json).
func gpt2Tokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	loadMu.Lock()
	defer loadMu.Unlock()
	if loadedGPT2 == nil {
		d := bpeDir(t)
		tok, err := LoadHF(filepath.Join(d, "encoder.json"), filepath.Join(d, "vocab.bpe"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		loadedGPT2 = tok
	}
	return loadedGPT2
}

// ofaTokenizer yields OFA (fairseq/BART) ids from the fairseq files.
func ofaTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	loadMu.Lock()
	defer loadMu.Unlock()
	if loadedOFA == nil {
		d := bpeDir(t)
		tok, err := LoadFairseq(filepath.Join(d, "encoder.json"), filepath.Join(d, "vocab.bpe"),
			filepath.Join(d, "dict.txt"), Options{Added: OFAAddedTokens()})
		if err != nil {
			t.Fatal(err)
		}
		loadedOFA = tok
	}
	return loadedOFA
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}
