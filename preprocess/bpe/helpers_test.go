package bpe

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ofaserve/ofaserve/internal/testenv"
)

// bpeDir is OFA's BPE data (testenv.BPEDir).
func bpeDir(t testing.TB) string {
	t.Helper()
	d, err := testenv.BPEDir()
	if err != nil {
		t.Fatal(err)
	}
	return d
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
