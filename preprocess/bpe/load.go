package bpe

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// DefaultCacheSize is the word-cache capacity used when Options.CacheSize
// is 0: enough for the working vocabulary of a long-running server, a few
// megabytes at most.
const DefaultCacheSize = 1 << 16

// Options adjust how a Tokenizer is built.
type Options struct {
	// Added lists tokens appended to the vocabulary, in order, after its
	// largest id; a token already in the vocabulary keeps its id and takes
	// no new one (as Hugging Face's add_tokens and fairseq's add_symbol do).
	// Added tokens are never matched inside text; find their ids with ID.
	Added []string
	// CacheSize bounds the word cache, in words: 0 means DefaultCacheSize,
	// a negative value disables the cache.
	CacheSize int
}

// OFAAddedTokens returns the tokens OFA adds to BART's vocabulary, in
// order: <mask> (already in a BART vocab.json, so skipped there), then
// <code_0> .. <code_8191>, then <bin_0> .. <bin_999>. With either loader the
// result has 59457 ids, <code_i> = 50265+i and <bin_i> = 58457+i.
func OFAAddedTokens() []string {
	out := make([]string, 0, 1+8192+1000)
	out = append(out, "<mask>")
	for i := 0; i < 8192; i++ {
		out = append(out, "<code_"+strconv.Itoa(i)+">")
	}
	for i := 0; i < 1000; i++ {
		out = append(out, "<bin_"+strconv.Itoa(i)+">")
	}
	return out
}

// LoadHF reads a Hugging Face GPT-2/BART tokenizer: vocab.json (token
// spelling -> id) and merges.txt. For OFA's checkpoint pass
// Options{Added: OFAAddedTokens()}.
func LoadHF(vocabPath, mergesPath string, opts Options) (*Tokenizer, error) {
	vf, err := os.Open(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("bpe: %w", err)
	}
	defer vf.Close()
	mf, err := os.Open(mergesPath)
	if err != nil {
		return nil, fmt.Errorf("bpe: %w", err)
	}
	defer mf.Close()
	return NewHF(vf, mf, opts)
}

// NewHF is LoadHF over readers.
func NewHF(vocabJSON, mergesTxt io.Reader, opts Options) (*Tokenizer, error) {
	vocab, err := readVocabJSON(vocabJSON, "vocab.json")
	if err != nil {
		return nil, err
	}
	merges, err := readMerges(mergesTxt)
	if err != nil {
		return nil, err
	}
	return build(vocab, merges, opts)
}

// LoadFairseq reads fairseq's GPT-2 BPE files: encoder.json (token spelling
// -> GPT-2 id), vocab.bpe (the merges) and dict.txt (one GPT-2 id per line,
// most frequent first). Ids are those of fairseq's Dictionary: <s>=0,
// <pad>=1, </s>=2, <unk>=3, then 4 + the dict.txt line index; a GPT-2 token
// missing from dict.txt encodes as <unk>. For OFA pass
// Options{Added: OFAAddedTokens()}.
func LoadFairseq(encoderPath, bpePath, dictPath string, opts Options) (*Tokenizer, error) {
	files := make([]*os.File, 0, 3)
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, p := range []string{encoderPath, bpePath, dictPath} {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("bpe: %w", err)
		}
		files = append(files, f)
	}
	return NewFairseq(files[0], files[1], files[2], opts)
}

// NewFairseq is LoadFairseq over readers.
func NewFairseq(encoderJSON, vocabBPE, dictTxt io.Reader, opts Options) (*Tokenizer, error) {
	encoder, err := readVocabJSON(encoderJSON, "encoder.json")
	if err != nil {
		return nil, err
	}
	merges, err := readMerges(vocabBPE)
	if err != nil {
		return nil, err
	}
	symbols, err := readDict(dictTxt)
	if err != nil {
		return nil, err
	}
	spelling := make(map[int32]string, len(encoder))
	for tok, id := range encoder {
		spelling[id] = tok
	}
	// A Dictionary maps each symbol to its latest index; the GPT-2 id
	// written as a decimal number is the symbol of a BPE token.
	vocab := make(map[string]int32, len(symbols))
	for idx, sym := range symbols {
		tok := sym
		if g, err := strconv.ParseInt(sym, 10, 32); err == nil {
			if s, ok := spelling[int32(g)]; ok {
				tok = s
			}
		}
		vocab[tok] = int32(idx)
	}
	return build(vocab, merges, opts)
}

// readVocabJSON reads a JSON object of token spelling -> id.
func readVocabJSON(r io.Reader, name string) (map[string]int32, error) {
	var vocab map[string]int32
	if err := json.NewDecoder(r).Decode(&vocab); err != nil {
		return nil, fmt.Errorf("bpe: %s: %w", name, err)
	}
	if len(vocab) == 0 {
		return nil, fmt.Errorf("bpe: %s: empty vocabulary", name)
	}
	return vocab, nil
}

// readMerges reads merges.txt / vocab.bpe: an optional "#version" line,
// then one merge per line, "left right" in vocabulary spelling.
func readMerges(r io.Reader) ([][2]string, error) {
	var merges [][2]string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimRight(sc.Text(), "\r")
		if text == "" || (line == 1 && strings.HasPrefix(text, "#version")) {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 2 {
			return nil, fmt.Errorf("bpe: merges line %d: want two tokens, got %q", line, text)
		}
		merges = append(merges, [2]string{f[0], f[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bpe: merges: %w", err)
	}
	return merges, nil
}

// readDict reads a fairseq dict.txt and returns the Dictionary's symbols
// by index, the four specials first.
func readDict(r io.Reader) ([]string, error) {
	symbols := []string{"<s>", "<pad>", "</s>", "<unk>"}
	seen := map[string]bool{}
	for _, s := range symbols {
		seen[s] = true
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimRight(sc.Text(), " \t\r")
		word, field, ok := cutLast(text)
		if !ok {
			return nil, fmt.Errorf("bpe: dict.txt line %d: want \"<symbol> <count>\", got %q", line, text)
		}
		overwrite := field == "#fairseq:overwrite"
		if overwrite {
			if word, field, ok = cutLast(word); !ok {
				return nil, fmt.Errorf("bpe: dict.txt line %d: want \"<symbol> <count>\", got %q", line, text)
			}
		}
		if _, err := strconv.ParseInt(field, 10, 64); err != nil {
			return nil, fmt.Errorf("bpe: dict.txt line %d: count %q is not an integer", line, field)
		}
		if seen[word] && !overwrite {
			return nil, fmt.Errorf("bpe: dict.txt line %d: duplicate symbol %q", line, word)
		}
		seen[word] = true
		symbols = append(symbols, word)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bpe: dict.txt: %w", err)
	}
	return symbols, nil
}

func cutLast(s string) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, ' ')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// build turns a vocabulary (spelling -> id) and ranked merges into a
// Tokenizer.
func build(vocab map[string]int32, merges [][2]string, opts Options) (*Tokenizer, error) {
	br := newByteRunes()
	t := &Tokenizer{
		merges: make(map[uint64]merge, len(merges)),
		ids:    make(map[string]int32, len(vocab)+len(opts.Added)),
	}

	// Output ids and their text.
	maxID := int32(-1)
	for tok, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("bpe: vocabulary: token %q has negative id %d", tok, id)
		}
		maxID = max(maxID, id)
		t.ids[tok] = id
	}
	t.text = make([]string, maxID+1, int(maxID)+1+len(opts.Added))
	t.hasText = make([]bool, maxID+1, int(maxID)+1+len(opts.Added))
	owner := make([]string, maxID+1)
	for tok, id := range vocab {
		if t.hasText[id] {
			a, b := owner[id], tok
			if a > b {
				a, b = b, a
			}
			return nil, fmt.Errorf("bpe: vocabulary: tokens %q and %q share id %d", a, b, id)
		}
		raw, ok := br.unspell(tok)
		if !ok {
			raw = tok
		}
		t.text[id], t.hasText[id], owner[id] = raw, true, tok
	}
	for _, tok := range opts.Added {
		if _, ok := t.ids[tok]; ok {
			continue
		}
		id := int32(len(t.text))
		t.ids[tok] = id
		t.text = append(t.text, tok)
		t.hasText = append(t.hasText, true)
	}

	// Symbols: the 256 bytes, then merge results in merge order.
	unk, hasUnk := vocab["<unk>"]
	var spellings []string
	symbol := make(map[string]int32, len(merges)+256)
	addSymbol := func(spelling string) (int32, error) {
		id, ok := vocab[spelling]
		if !ok {
			if !hasUnk {
				return 0, fmt.Errorf("bpe: token %q has no id and the vocabulary has no <unk>", spelling)
			}
			id = unk
		}
		s := int32(len(spellings))
		spellings = append(spellings, spelling)
		symbol[spelling] = s
		t.symbolID = append(t.symbolID, id)
		return s, nil
	}
	for b := 0; b < 256; b++ {
		if _, err := addSymbol(string(br.toRune[b])); err != nil {
			return nil, err
		}
	}

	// GPT-2's method and the heap method agree when each merge's parts are
	// made by earlier merges (see mergeLong). A part made by no merge at all
	// makes the merge dead (it can never apply) and is harmless; a part made
	// only by a later merge is refused.
	lastMaker := make(map[string]int, len(merges))
	for rank, m := range merges {
		lastMaker[m[0]+m[1]] = rank
	}
	for rank, m := range merges {
		var parts [2]int32
		dead := false
		for k, part := range m {
			if _, ok := br.unspell(part); !ok {
				return nil, fmt.Errorf("bpe: merges rank %d: %q is not in the byte alphabet", rank, part)
			}
			s, ok := symbol[part]
			if !ok {
				if later, made := lastMaker[part]; made && later > rank {
					return nil, fmt.Errorf("bpe: merges rank %d (%q %q): %q is only made by the later merge of rank %d", rank, m[0], m[1], part, later)
				}
				dead = true
			}
			parts[k] = s
		}
		if dead {
			continue
		}
		key := pairKey(parts[0], parts[1])
		if _, dup := t.merges[key]; dup {
			return nil, fmt.Errorf("bpe: merges rank %d: duplicate merge %q %q", rank, m[0], m[1])
		}
		joined := m[0] + m[1]
		res, ok := symbol[joined]
		if !ok {
			var err error
			if res, err = addSymbol(joined); err != nil {
				return nil, err
			}
		}
		t.merges[key] = merge{rank: int32(rank), result: res}
	}

	cacheSize := opts.CacheSize
	if cacheSize == 0 {
		cacheSize = DefaultCacheSize
	}
	t.cache = newWordCache(cacheSize)
	return t, nil
}
