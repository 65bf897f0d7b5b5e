package prompt

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ofaserve/ofaserve/internal/testenv"
	"github.com/ofaserve/ofaserve/preprocess/bpe"
)

func runPython(t testing.TB, in, out any, args ...string) {
	t.Helper()
	var stdin, stderr bytes.Buffer
	if in != nil {
		if err := json.NewEncoder(&stdin).Encode(in); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(testenv.Python(), append([]string{filepath.Join("testdata", "pre_caption_ref.py")}, args...)...)
	cmd.Stdin, cmd.Stderr = &stdin, &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("python reference %v: %v\n%s", args, err, stderr.String())
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("python reference %v: bad JSON: %v", args, err)
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
		d, err := testenv.BPEDir()
		if err != nil {
			t.Fatal(err)
		}
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
