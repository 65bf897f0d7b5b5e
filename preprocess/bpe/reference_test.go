package bpe

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/ofaserve/ofaserve/internal/testenv"
)

// The tokenizer must give the ids of two independent implementations:
// npm's gpt-3-encoder (GPT-2 ids) and our Python reference built on the
// `regex` module (GPT-2 ids and fairseq/BART ids).

type pyIDs struct {
	GPT2 [][]int32 `json:"gpt2"`
	OFA  [][]int32 `json:"ofa"`
}

var (
	pyMu    sync.Mutex
	pyCache pyIDs
)

// pythonReference returns the Python reference's ids of testCorpus(),
// computed once per test binary.
func pythonReference(t *testing.T) pyIDs {
	t.Helper()
	pyMu.Lock()
	defer pyMu.Unlock()
	if pyCache.GPT2 != nil {
		return pyCache
	}
	texts := testCorpus()
	var out pyIDs
	runJSON(t, texts, &out, testenv.Python(), filepath.Join("testdata", "ofa_bpe_ref.py"), "encode", "--bpe-dir", bpeDir(t))
	if len(out.GPT2) != len(texts) || len(out.OFA) != len(texts) {
		t.Fatalf("python reference returned %d/%d results for %d texts", len(out.GPT2), len(out.OFA), len(texts))
	}
	pyCache = out
	return out
}

// jsComparable reports whether gpt-3-encoder's JavaScript regex classifies
// every rune of s as Python's regex does: JS's \s lacks U+0085 and adds
// U+FEFF, and Node's Unicode tables are newer than Unicode 15.
func jsComparable(s string) bool {
	for _, r := range s {
		if r == 0x85 || r == 0xFEFF || !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.Cc, unicode.Cf) {
			return false
		}
	}
	return true
}

func TestMatchesPythonReference(t *testing.T) {
	texts := testCorpus()
	if len(texts) < 200 {
		t.Fatalf("corpus has %d strings, want at least 200", len(texts))
	}
	ref := pythonReference(t)
	gpt2, ofa := gpt2Tokenizer(t), ofaTokenizer(t)
	for i, s := range texts {
		if got := gpt2.Encode(s); !slices.Equal(got, ref.GPT2[i]) {
			t.Errorf("GPT-2 ids of %q:\n got %v\nwant %v", s, got, ref.GPT2[i])
		}
		if got := ofa.Encode(s); !slices.Equal(got, ref.OFA[i]) {
			t.Errorf("OFA ids of %q:\n got %v\nwant %v", s, got, ref.OFA[i])
		}
	}
}

func TestMatchesGPT3Encoder(t *testing.T) {
	script := filepath.Join("testdata", "gpt2_ref.js")
	if _, err := os.Stat(filepath.Join("testdata", "node_modules", "gpt-3-encoder")); err != nil {
		t.Fatalf("gpt-3-encoder is not installed (run scripts/dev/setup.sh): %v", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed for the gpt-3-encoder reference: %v", err)
	}
	var texts []string
	for _, s := range testCorpus() {
		if jsComparable(s) {
			texts = append(texts, s)
		}
	}
	if len(texts) < 200 {
		t.Fatalf("only %d strings are comparable with JavaScript, want at least 200", len(texts))
	}
	var ref [][]int32
	runJSON(t, texts, &ref, node, script)
	if len(ref) != len(texts) {
		t.Fatalf("gpt-3-encoder returned %d results for %d texts", len(ref), len(texts))
	}
	tok := gpt2Tokenizer(t)
	for i, s := range texts {
		if got := tok.Encode(s); !slices.Equal(got, ref[i]) {
			t.Errorf("GPT-2 ids of %q:\n got %v\nwant %v (gpt-3-encoder)", s, got, ref[i])
		}
	}
}

// The checkpoint ships a BART vocab.json (BART ids) with GPT-2's merges; a
// vocab.json built by the Python reference from the fairseq files must give
// the same ids through LoadHF as LoadFairseq does.
func TestHFBartVocabMatchesFairseq(t *testing.T) {
	dir := t.TempDir()
	var vocab map[string]int32
	runJSON(t, nil, &vocab, testenv.Python(), filepath.Join("testdata", "ofa_bpe_ref.py"), "bart-vocab", "--bpe-dir", bpeDir(t))
	if len(vocab) != 50265 {
		t.Fatalf("BART vocab.json has %d entries, want 50265", len(vocab))
	}
	vocabPath := filepath.Join(dir, "vocab.json")
	writeJSON(t, vocabPath, vocab)
	hf, err := LoadHF(vocabPath, filepath.Join(bpeDir(t), "vocab.bpe"), Options{Added: OFAAddedTokens()})
	if err != nil {
		t.Fatal(err)
	}
	fs := ofaTokenizer(t)
	if hf.VocabSize() != 59457 || fs.VocabSize() != 59457 {
		t.Fatalf("vocab sizes: HF %d, fairseq %d, want 59457", hf.VocabSize(), fs.VocabSize())
	}
	for _, name := range []string{"<s>", "<pad>", "</s>", "<unk>", "<mask>", "<code_0>", "<code_8191>", "<bin_0>", "<bin_999>", "Ġyes"} {
		a, okA := hf.ID(name)
		b, okB := fs.ID(name)
		if !okA || !okB || a != b {
			t.Errorf("ID(%q): HF %d,%v fairseq %d,%v", name, a, okA, b, okB)
		}
	}
	ref := pythonReference(t)
	for i, s := range testCorpus() {
		if got := hf.Encode(s); !slices.Equal(got, ref.OFA[i]) {
			t.Errorf("HF BART ids of %q:\n got %v\nwant %v", s, got, ref.OFA[i])
		}
	}
}

// Every code point is classified as Python's regex module classifies it.
func TestClassesMatchPythonRegex(t *testing.T) {
	var runs [][2]int
	runJSON(t, nil, &runs, testenv.Python(), filepath.Join("testdata", "ofa_bpe_ref.py"), "classes")
	var diffs []string
	for k, run := range runs {
		end := 0x110000
		if k+1 < len(runs) {
			end = runs[k+1][0]
		}
		for r := run[0]; r < end; r++ {
			if got := classOf(rune(r)); int(got) != run[1] {
				diffs = append(diffs, fmt.Sprintf("U+%04X: got %d want %d", r, got, run[1]))
			}
		}
	}
	if len(diffs) > 0 {
		t.Errorf("%d code points classified differently, first: %s", len(diffs), strings.Join(diffs[:min(10, len(diffs))], "; "))
	}
}
