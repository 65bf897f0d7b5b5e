package bpe

import (
	"fmt"
	"strings"
)

// Tokenizer encodes text into token ids and decodes ids back into text.
// Build one with LoadHF, LoadFairseq or New; it is safe for concurrent use.
type Tokenizer struct {
	// merges maps a pair of adjacent symbols, packed by pairKey, to the
	// merge that joins them. Symbols 0..255 are the single bytes; symbol
	// 256+k is the k-th distinct merge result, in merge order.
	merges map[uint64]merge
	// symbolID is the output id of every symbol.
	symbolID []int32
	// text is the decoded bytes of every output id; hasText marks ids that
	// exist (the id space may have gaps).
	text    []string
	hasText []bool
	// ids maps a vocabulary spelling ("Ġyes", "<s>", "<code_5>") to its id.
	ids   map[string]int32
	cache *wordCache
}

type merge struct {
	rank   int32 // line number in the merges file, from 0
	result int32 // the joined symbol
}

func pairKey(left, right int32) uint64 { return uint64(uint32(left))<<32 | uint64(uint32(right)) }

// shortWord is the longest pre-token, in bytes, merged by the quadratic
// method GPT-2 itself uses; longer ones use an equivalent heap-based method
// whose cost grows as n log n.
const shortWord = 48

// Encode returns the ids of text. Special tokens are not recognised in text.
func (t *Tokenizer) Encode(text string) []int32 {
	return t.AppendEncode(make([]int32, 0, len(text)/3+1), text)
}

// AppendEncode appends the ids of text to dst and returns the extended
// slice; it allocates nothing when dst has room and every word is cached.
func (t *Tokenizer) AppendEncode(dst []int32, text string) []int32 {
	for i := 0; i < len(text); {
		j := nextPiece(text, i)
		dst = t.appendWord(dst, text[i:j])
		i = j
	}
	return dst
}

// appendWord appends the ids of one pre-token.
func (t *Tokenizer) appendWord(dst []int32, word string) []int32 {
	if len(word) == 1 {
		return append(dst, t.symbolID[word[0]])
	}
	cacheable := t.cache != nil && len(word) <= maxCachedWord
	if cacheable {
		if ids, ok := t.cache.get(word); ok {
			return append(dst, ids...)
		}
	}
	start := len(dst)
	if len(word) <= shortWord {
		dst = t.mergeShort(dst, word)
	} else {
		dst = t.mergeLong(dst, word)
	}
	if cacheable {
		t.cache.put(word, dst[start:])
	}
	return dst
}

// mergeShort runs GPT-2's bpe() on word literally: while some adjacent pair
// has a merge, take the pair with the lowest rank and join every occurrence
// of it, left to right. len(word) must be at most shortWord.
func (t *Tokenizer) mergeShort(dst []int32, word string) []int32 {
	var buf [shortWord]int32
	syms := buf[:len(word)]
	for i := 0; i < len(word); i++ {
		syms[i] = int32(word[i])
	}
	for len(syms) > 1 {
		best := merge{rank: -1}
		var left, right int32
		for i := 0; i+1 < len(syms); i++ {
			if m, ok := t.merges[pairKey(syms[i], syms[i+1])]; ok && (best.rank < 0 || m.rank < best.rank) {
				best, left, right = m, syms[i], syms[i+1]
			}
		}
		if best.rank < 0 {
			break
		}
		n := 0
		for i := 0; i < len(syms); n++ {
			if i+1 < len(syms) && syms[i] == left && syms[i+1] == right {
				syms[n] = best.result
				i += 2
			} else {
				syms[n] = syms[i]
				i++
			}
		}
		syms = syms[:n]
	}
	for _, s := range syms {
		dst = append(dst, t.symbolID[s])
	}
	return dst
}

// Decode returns the text of ids. Special and added tokens decode to their
// spelling ("<s>"). Byte sequences that are not valid UTF-8 are kept as they
// are (Python's decoders would replace them with U+FFFD).
func (t *Tokenizer) Decode(ids []int32) (string, error) {
	var b strings.Builder
	for i, id := range ids {
		if id < 0 || int(id) >= len(t.text) || !t.hasText[id] {
			return "", fmt.Errorf("bpe: decode: ids[%d] = %d is not in the vocabulary", i, id)
		}
		b.WriteString(t.text[id])
	}
	return b.String(), nil
}

// ID returns the id of a token given its vocabulary spelling: a special or
// added token ("<s>", "</s>", "<pad>", "<mask>", "<code_5>") or a BPE token
// as spelled in the vocabulary ("Ġyes" for " yes").
func (t *Tokenizer) ID(token string) (int32, bool) {
	id, ok := t.ids[token]
	return id, ok
}

// VocabSize returns one more than the largest id.
func (t *Tokenizer) VocabSize() int { return len(t.text) }

// CachedWords returns the number of words in the cache (for tests and
// metrics).
func (t *Tokenizer) CachedWords() int {
	if t.cache == nil {
		return 0
	}
	return t.cache.len()
}
