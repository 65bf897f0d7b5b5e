package bpe

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// Ids from docs/ofa-visual-entailment.md §0.4 and §3.3, computed
// there by an independent implementation.
func TestOFASpecExamples(t *testing.T) {
	tok := ofaTokenizer(t)
	cases := []struct {
		text string
		want []int32
	}{
		{` does the image describe " two dogs play "?`, []int32{473, 5, 2274, 6190, 22, 80, 3678, 310, 22, 116}},
		{` does the image describe " there are two birds. "?`, []int32{473, 5, 2274, 6190, 22, 89, 32, 80, 7723, 4, 22, 116}},
		{` can image and text1 " there are two dogs. " imply text2 " the two dogs are eating. "?`,
			[]int32{64, 2274, 8, 2788, 134, 22, 89, 32, 80, 3678, 4, 22, 25696, 2788, 176, 22, 5, 80, 3678, 32, 4441, 4, 22, 116}},
		{" yes", []int32{4420}},
		{" no", []int32{117}},
		{" maybe", []int32{2085}},
	}
	for _, c := range cases {
		if got := tok.Encode(c.text); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
	}
	ids := map[string]int32{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 50264,
		"<code_0>": 50265, "<code_8191>": 58456, "<bin_0>": 58457, "<bin_999>": 59456}
	for name, want := range ids {
		if got, ok := tok.ID(name); !ok || got != want {
			t.Errorf("ID(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
	if tok.VocabSize() != 59457 {
		t.Errorf("VocabSize = %d, want 59457", tok.VocabSize())
	}
}

func TestSpecialTokensAreNotRecognisedInText(t *testing.T) {
	tok := ofaTokenizer(t)
	for _, s := range []string{"<s>", "</s>", "<mask>", "<code_5>", "a<pad>b"} {
		ids := tok.Encode(s)
		for _, id := range ids {
			if id < 4 || id >= 50264 {
				t.Errorf("Encode(%q) = %v: contains special or added id %d", s, ids, id)
			}
		}
		if len(ids) < 2 {
			t.Errorf("Encode(%q) = %v: want it spelled with several BPE tokens", s, ids)
		}
	}
}

func TestPieces(t *testing.T) {
	cases := []struct {
		text string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"a   b", []string{"a", "  ", " b"}},
		{"a\t\tb", []string{"a", "\t", "\t", "b"}},
		{"a \n b", []string{"a", " \n", " b"}},
		{"end  ", []string{"end", "  "}},
		{"it's", []string{"it", "'s"}},
		{"IT'S", []string{"IT", "'", "S"}},
		{"''s", []string{"''", "s"}},
		{" 's", []string{" '", "s"}},
		{"we'll've", []string{"we", "'ll", "'ve"}},
		{"x 12 ?!", []string{"x", " 12", " ?!"}},
		{"e\u0301", []string{"e", "\u0301"}},
		{" \u00a0x", []string{" ", "\u00a0", "x"}},
		{"a\u00a0b", []string{"a", "\u00a0", "b"}},
		{"a\u0085\u0085b", []string{"a", "\u0085", "\u0085", "b"}},
		{"a\xffb", []string{"a", "\xff", "b"}},
	}
	for _, c := range cases {
		var got []string
		forEachPiece(c.text, func(p string) { got = append(got, p) })
		if !slices.Equal(got, c.want) {
			t.Errorf("pieces of %q = %q, want %q", c.text, got, c.want)
		}
	}
}

func TestDecode(t *testing.T) {
	tok := ofaTokenizer(t)
	got, err := tok.Decode([]int32{0, 473, 5, 2274, 2, 50265, 59456})
	if err != nil {
		t.Fatal(err)
	}
	if want := "<s> does the image</s><code_0><bin_999>"; got != want {
		t.Errorf("Decode = %q, want %q", got, want)
	}
	for _, bad := range [][]int32{{-1}, {59457}, {5, 1 << 30}} {
		if _, err := tok.Decode(bad); err == nil || !strings.Contains(err.Error(), "not in the vocabulary") {
			t.Errorf("Decode(%v) error = %v, want one naming the bad id", bad, err)
		}
	}
}

func TestRoundTripAndMergeMethods(t *testing.T) {
	tok := gpt2Tokenizer(t)
	for _, s := range testCorpus() {
		checkRoundTrip(t, tok, s)
	}
}

// checkRoundTrip checks that s decodes back from its ids and that the two
// merge methods agree on each of its pieces.
func checkRoundTrip(t *testing.T, tok *Tokenizer, s string) {
	t.Helper()
	ids := tok.Encode(s)
	back, err := tok.Decode(ids)
	if err != nil {
		t.Fatalf("Decode(Encode(%q)): %v", s, err)
	}
	if back != s {
		t.Fatalf("Decode(Encode(%q)) = %q", s, back)
	}
	var joined strings.Builder
	forEachPiece(s, func(p string) {
		joined.WriteString(p)
		if p == "" {
			t.Fatalf("empty piece in %q", s)
		}
		if len(p) <= shortWord {
			short, long := tok.mergeShort(nil, p), tok.mergeLong(nil, p)
			if !slices.Equal(short, long) {
				t.Fatalf("piece %q: GPT-2 merge order gives %v, heap gives %v", p, short, long)
			}
		}
	})
	if joined.String() != s {
		t.Fatalf("pieces of %q join to %q", s, joined.String())
	}
}

func FuzzEncodeDecode(f *testing.F) {
	for _, s := range handCorpus {
		f.Add(s)
	}
	f.Add("a\xffb\xc3")
	f.Add("\xed\xa0\x80 surrogate")
	tok := gpt2Tokenizer(f)
	f.Fuzz(func(t *testing.T, s string) {
		checkRoundTrip(t, tok, s)
		if utf8.ValidString(s) {
			// Cached and uncached encodings agree.
			if a, b := tok.Encode(s), tok.Encode(s); !slices.Equal(a, b) {
				t.Fatalf("Encode(%q) not stable: %v then %v", s, a, b)
			}
		}
	})
}

func TestCacheIsBoundedAndTransparent(t *testing.T) {
	d := bpeDir(t)
	uncached, err := LoadHF(d+"/encoder.json", d+"/vocab.bpe", Options{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	small, err := LoadHF(d+"/encoder.json", d+"/vocab.bpe", Options{CacheSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	corpus := testCorpus()[:50]
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 400 {
				s := fmt.Sprintf("word%d and the%d %s", (i*7+g)%300, i%50, corpus[i%50])
				if a, b := small.Encode(s), uncached.Encode(s); !slices.Equal(a, b) {
					errs <- fmt.Sprintf("Encode(%q): cached %v, uncached %v", s, a, b)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := small.CachedWords(); n == 0 || n > 100+cacheShards {
		t.Errorf("cache holds %d words, want 1..%d", n, 100+cacheShards)
	}
	if uncached.CachedWords() != 0 {
		t.Errorf("disabled cache holds %d words", uncached.CachedWords())
	}
}

func TestLoadErrors(t *testing.T) {
	vocab := strings.TrimSuffix(allBytesVocab(), "}") + `, "ab": 256, "abc": 257, "bc": 258}`
	cases := []struct {
		name, vocab, merges, want string
	}{
		{"bad json", `{"a": `, "a b\n", "vocab.json"},
		{"empty vocab", `{}`, "a b\n", "empty vocabulary"},
		{"negative id", `{"a": -1}`, "", "negative id"},
		{"shared id", `{"a": 0, "b": 0}`, "", "share id 0"},
		{"three fields", vocab, "#version: 0.2\na b c\n", "want two tokens"},
		{"not bytes", vocab, "a \u4e2d\n", "byte alphabet"},
		{"duplicate merge", vocab, "a b\na b\n", "duplicate merge"},
		{"out of order", vocab, "ab c\na b\n", "later merge"},
		{"no id no unk", `{"a": 0}`, "", "has no id"},
	}
	for _, c := range cases {
		_, err := NewHF(strings.NewReader(c.vocab), strings.NewReader(c.merges), Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error = %v, want one containing %q", c.name, err, c.want)
		}
	}
	dictCases := []struct{ dict, want string }{
		{"13\n", `want "<symbol> <count>"`},
		{"13 x\n", "not an integer"},
		{"13 1\n13 2\n", "duplicate symbol"},
	}
	enc := allBytesVocab()
	for _, c := range dictCases {
		_, err := NewFairseq(strings.NewReader(enc), strings.NewReader(""), strings.NewReader(c.dict), Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("dict %q: error = %v, want one containing %q", c.dict, err, c.want)
		}
	}
	if _, err := LoadHF("no/such/vocab.json", "no/such/merges.txt", Options{}); err == nil {
		t.Error("LoadHF of missing files: no error")
	}
}

// allBytesVocab is an encoder.json with just the 256 byte tokens.
func allBytesVocab() string {
	br := newByteRunes()
	parts := make([]string, 256)
	for b := range 256 {
		parts[b] = fmt.Sprintf("%q: %d", string(br.toRune[b]), b)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// A tiny hand-made vocabulary: merges apply by rank, and a token missing
// from dict.txt encodes as <unk>.
func TestTinyFairseq(t *testing.T) {
	enc := strings.TrimSuffix(allBytesVocab(), "}") + `, "ab": 256, "abc": 257, "Ġa": 258}`
	merges := "#version: 0.2\na b\nab c\nĠ a\n"
	// dict.txt holds GPT-2 ids 97 (a), 256 (ab), 257 (abc), 32 (space); not 258.
	dict := "97 10\n256 9\n257 8\n32 7\n"
	tok, err := NewFairseq(strings.NewReader(enc), strings.NewReader(merges), strings.NewReader(dict), Options{Added: []string{"<mask>", "<s>"}})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]int32{"a": {4}, "ab": {5}, "abc": {6}, "abcab": {6, 5}, " a": {3}, "b": {3}}
	for s, want := range cases {
		if got := tok.Encode(s); !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, want %v", s, got, want)
		}
	}
	if id, ok := tok.ID("<mask>"); !ok || id != 8 || tok.VocabSize() != 9 {
		t.Errorf("<mask> = %d,%v, size %d; want 8, 9", id, ok, tok.VocabSize())
	}
	if id, _ := tok.ID("<s>"); id != 0 {
		t.Errorf("re-added <s> = %d, want 0", id)
	}
}
