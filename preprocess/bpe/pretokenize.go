package bpe

import (
	"unicode"
	"unicode/utf8"
)

// Character classes of GPT-2's pre-tokenizer regex.
const (
	classOther  = iota // [^\s\p{L}\p{N}]
	classLetter        // \p{L}
	classNumber        // \p{N}
	classSpace         // \s
)

// asciiClass holds the class of every ASCII byte.
var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for c := 0; c < utf8.RuneSelf; c++ {
		t[c] = classOf(rune(c))
	}
	return t
}()

// classOf classifies a rune as Python's regex module does: \p{L} and \p{N}
// by general category, \s by the White_Space property. Go's unicode.IsSpace
// is exactly White_Space. Both use Unicode 15.0 tables.
func classOf(r rune) uint8 {
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsSpace(r):
		return classSpace
	}
	return classOther
}

// runeAt decodes the rune at s[i] and classifies it. An invalid byte decodes
// as utf8.RuneError (U+FFFD, a symbol) of width 1.
func runeAt(s string, i int) (class uint8, width int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	return classOf(r), w
}

// scanRun returns the end of the run of runes of class cls that starts at i.
func scanRun(s string, i int, cls uint8) int {
	for i < len(s) {
		c, w := runeAt(s, i)
		if c != cls {
			break
		}
		i += w
	}
	return i
}

// nextPiece returns the end of the pre-token that starts at s[i], i < len(s):
// the end of the leftmost match of GPT-2's pattern at i, trying the
// alternatives in order as a backtracking regex engine does.
func nextPiece(s string, i int) int {
	// 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, ASCII apostrophe only)
	if s[i] == '\'' && i+1 < len(s) {
		switch s[i+1] {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < len(s) && s[i+2] == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < len(s) && s[i+2] == 'l' {
				return i + 3
			}
		}
	}
	cls, w := runeAt(s, i)
	// ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional U+0020
	// joins the run that follows it.
	if s[i] == ' ' && i+1 < len(s) {
		if next, w2 := runeAt(s, i+1); next != classSpace {
			return scanRun(s, i+1+w2, next)
		}
	}
	if cls != classSpace {
		return scanRun(s, i+w, cls)
	}
	// \s+(?!\S) then \s+: a whitespace run that reaches the end of the text
	// is taken whole; one followed by a non-space gives back its last rune
	// (which then starts the next piece), unless that would leave it empty.
	end := i + w
	last := i
	for end < len(s) {
		c, w := runeAt(s, end)
		if c != classSpace {
			if last > i {
				return last
			}
			return end
		}
		last = end
		end += w
	}
	return end
}

// forEachPiece calls fn with every pre-token of s, in order.
func forEachPiece(s string, fn func(piece string)) {
	for i := 0; i < len(s); {
		j := nextPiece(s, i)
		fn(s[i:j])
		i = j
	}
}
