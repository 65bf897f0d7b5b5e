package prompt

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// PreCaption normalises a caption exactly as OFA's pre_caption (fairseq
// data/ofa_dataset.py, ModelScope preprocessors/ofa/base.py) does, in order:
//
//  1. lowercase, as Python's str.lower (İ becomes "i̇", a final Σ becomes ς);
//  2. strip leading ',', '.', '!', '?', '*', '#', ':', ';', '~';
//  3. replace '-' and '/' with a space, then "<person>" with "person";
//  4. replace every run of two or more whitespace characters (Python re's
//     \s: Unicode White_Space plus U+001C..U+001F) with one space;
//  5. strip trailing '\n', then leading and trailing ' ';
//  6. keep the first maxWords words, splitting on ' ' (maxWords <= 0: all).
//
// s should be valid UTF-8; an invalid byte becomes U+FFFD.
func PreCaption(s string, maxWords int) string {
	s = pyLower(s)
	s = strings.TrimLeft(s, ",.!?*#:;~")
	s = strings.Map(dashSlashToSpace, s)
	s = strings.ReplaceAll(s, "<person>", "person")
	s = collapseSpaces(s)
	s = strings.TrimRight(s, "\n")
	s = strings.Trim(s, " ")
	if maxWords > 0 {
		n := 0
		for i := 0; i < len(s); i++ {
			if s[i] == ' ' {
				if n++; n == maxWords {
					return s[:i]
				}
			}
		}
	}
	return s
}

func dashSlashToSpace(r rune) rune {
	if r == '-' || r == '/' {
		return ' '
	}
	return r
}

// isPySpace is Python re's \s for str patterns (str.isspace): White_Space
// plus the information separators U+001C..U+001F.
func isPySpace(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || ('\t' <= r && r <= '\r') || (0x1C <= r && r <= 0x1F)
	}
	return unicode.IsSpace(r) || (0x1C <= r && r <= 0x1F)
}

// collapseSpaces replaces each run of 2+ isPySpace runes with one ' '.
func collapseSpaces(s string) string {
	if !hasSpaceRun(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if !isPySpace(r) {
			b.WriteString(s[i : i+w])
			i += w
			continue
		}
		j := i + w
		for j < len(s) {
			r2, w2 := utf8.DecodeRuneInString(s[j:])
			if !isPySpace(r2) {
				break
			}
			j += w2
		}
		if j-i == w {
			b.WriteString(s[i:j]) // a single whitespace rune stays as it is
		} else {
			b.WriteByte(' ')
		}
		i = j
	}
	return b.String()
}

// hasSpaceRun reports whether s holds two adjacent isPySpace runes.
func hasSpaceRun(s string) bool {
	prev := false
	for _, r := range s {
		sp := isPySpace(r)
		if sp && prev {
			return true
		}
		prev = sp
	}
	return false
}

// pyLower is Python's str.lower: the full lowercase mapping, whose only
// unconditional multi-rune entry is U+0130, plus the Final_Sigma rule.
func pyLower(s string) string {
	if isLowerASCII(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	for i, r := range s {
		switch {
		case r < utf8.RuneSelf:
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			b.WriteByte(byte(r))
		case r == 'İ':
			b.WriteString("i\u0307")
		case r == 'Σ':
			if finalSigma(s, i) {
				b.WriteRune('ς')
			} else {
				b.WriteRune('σ')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

func isLowerASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// finalSigma reports whether the Σ at s[i] ends a word: a cased letter
// precedes it (case-ignorable runes skipped) and none follows it.
func finalSigma(s string, i int) bool {
	j := i
	before := false
	for j > 0 {
		r, w := utf8.DecodeLastRuneInString(s[:j])
		j -= w
		if !caseIgnorable(r) {
			before = cased(r)
			break
		}
	}
	if !before {
		return false
	}
	for j = i + len("Σ"); j < len(s); {
		r, w := utf8.DecodeRuneInString(s[j:])
		j += w
		if !caseIgnorable(r) {
			return !cased(r)
		}
	}
	return true
}

// cased is Unicode's Cased property.
func cased(r rune) bool {
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

// caseIgnorable is Unicode's Case_Ignorable property: Mn, Me, Cf, Lm, Sk,
// and the Word_Break classes MidLetter, MidNumLet and Single_Quote.
func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0x00B7, 0x0387, 0x055F, 0x05F4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
