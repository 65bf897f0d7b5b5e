package prompt

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ofaserve/ofaserve/preprocess/bpe"
)

func pythonBin() string {
	if p := os.Getenv("OFASERVE_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

func runPython(t testing.TB, in, out any, args ...string) {
	t.Helper()
	var stdin, stderr bytes.Buffer
	if in != nil {
		if err := json.NewEncoder(&stdin).Encode(in); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(pythonBin(), append([]string{filepath.Join("testdata", "pre_caption_ref.py")}, args...)...)
	cmd.Stdin, cmd.Stderr = &stdin, &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("python reference %v: %v\n%s", args, err, stderr.String())
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("python reference %v: bad JSON: %v", args, err)
	}
}

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
			return filepath.Join(dir, "..", "shared", "ofa-bpe")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

var (
	tokMu sync.Mutex
	tok   *bpe.Tokenizer
)

// ofaTokenizer is OFA's tokenizer (fairseq files, BART ids).
func ofaTokenizer(t testing.TB) *bpe.Tokenizer {
	t.Helper()
	tokMu.Lock()
	defer tokMu.Unlock()
	if tok == nil {
		d := bpeDir(t)
		var err error
		tok, err = bpe.LoadFairseq(filepath.Join(d, "encoder.json"), filepath.Join(d, "vocab.bpe"),
			filepath.Join(d, "dict.txt"), bpe.Options{Added: bpe.OFAAddedTokens()})
		if err != nil {
			t.Fatal(err)
		}
	}
	return tok
}

func newBuilder(t testing.TB, cfg Config) *Builder {
	t.Helper()
	b, err := New(ofaTokenizer(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
