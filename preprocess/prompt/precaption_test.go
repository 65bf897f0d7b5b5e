package prompt

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPreCaption(t *testing.T) {
	cases := []struct {
		in       string
		maxWords int
		want     string
	}{
		{"Two dogs play.", 0, "two dogs play."},
		{"  Two   DOGS\tplay  ", 0, "two dogs\tplay"},
		{",.!?*#:;~Hello", 0, "hello"},
		{" ,Hello", 0, " ,hello"[1:]}, // the space is stripped after lstrip: ",hello"
		{"...and then", 0, "and then"},
		{"well-known/red", 0, "well known red"},
		{"a - b", 0, "a b"},
		{"<PERSON> rides a bike", 0, "person rides a bike"},
		{"<per-son>", 0, "<per son>"},
		{"line\n", 0, "line"},
		{"line\n\n", 0, "line"}, // collapsed to " ", then stripped
		{"a\nb", 0, "a\nb"},     // a lone newline stays
		{"a\n\nb", 0, "a b"},
		{"a\u00a0\u00a0b", 0, "a b"},
		{"a\x1c\x1db", 0, "a b"}, // re's \s includes U+001C..U+001F
		{"tab\t", 0, "tab\t"},    // strip(' ') keeps a lone tab
		{"one two three four", 2, "one two"},
		{"one two three", 3, "one two three"},
		{"one  two   three", 2, "one two"},
		{"", 0, ""},
		{"   ", 0, ""},
		{"İstanbul", 0, "i\u0307stanbul"},
		{"ΟΔΟΣ ΣΟΦΙΑΣ.", 0, "οδος σοφιας."},
		{"ΣΑ", 0, "σα"},
		{"Σ", 0, "σ"},
		{"AΣ'", 0, "aς'"},
		{"ÀÉÎ Straße", 0, "àéî straße"},
		{"What? No!", 0, "what? no!"},
	}
	for _, c := range cases {
		if got := PreCaption(c.in, c.maxWords); got != c.want {
			t.Errorf("PreCaption(%q, %d) = %q, want %q", c.in, c.maxWords, got, c.want)
		}
	}
}

// preCaptionCorpus mixes the characters each step of pre_caption handles.
func preCaptionCorpus() []string {
	pieces := []string{"Two", "DOGS", "play", ".", ",", "!", "?", "*", "#", ":", ";", "~", "-", "/", "<person>",
		"<PERSON>", " ", "  ", "\t", "\n", "\n\n", "\r\n", "\u00a0", "\u3000", "\x1c", "\x1f", "\u0085", "İ", "Σ",
		"ΣΑΣ", "'", "é", "\u0301", "中文", "😀", "ǅ", "Ⅻ", "ẞ"}
	out := []string{"", " ", "\n", "two dogs play", ` does the image describe " two dogs play "?`}
	for i := range 400 {
		var b strings.Builder
		x := uint32(i*2654435761 + 12345)
		for k := int(x%9) + 1; k > 0; k-- {
			x = x*1103515245 + 12345
			b.WriteString(pieces[(x>>8)%uint32(len(pieces))])
		}
		out = append(out, b.String())
	}
	return out
}

func TestPreCaptionMatchesPython(t *testing.T) {
	texts := preCaptionCorpus()
	for _, maxWords := range []int{0, 3} {
		req := map[string]any{"texts": texts}
		if maxWords > 0 {
			req["max_words"] = maxWords
		}
		var want []string
		runPython(t, req, &want, "caption")
		if len(want) != len(texts) {
			t.Fatalf("python returned %d results for %d texts", len(want), len(texts))
		}
		for i, s := range texts {
			if got := PreCaption(s, maxWords); got != want[i] {
				t.Errorf("PreCaption(%q, %d) = %q, Python gives %q", s, maxWords, got, want[i])
			}
		}
	}
}

// Lowercasing, the final-sigma rule and re's \s agree with Python for every
// code point Python's Unicode database assigns.
func TestCasingMatchesPythonForEveryCodePoint(t *testing.T) {
	var ref struct {
		Lower      [][2]any `json:"lower"`
		Sigma      [][2]int `json:"sigma"`
		Unassigned [][2]int `json:"unassigned"`
		Space      []int    `json:"space"`
	}
	runPython(t, nil, &ref, "casing")
	lower := make(map[rune]string, len(ref.Lower))
	for _, e := range ref.Lower {
		lower[rune(e[0].(float64))] = e[1].(string)
	}
	unassigned := make([]bool, 0x110000)
	for _, u := range ref.Unassigned {
		for cp := u[0]; cp <= u[1]; cp++ {
			unassigned[cp] = true
		}
	}
	space := map[rune]bool{}
	for _, cp := range ref.Space {
		space[rune(cp)] = true
	}
	var diffs []string
	for k, run := range ref.Sigma {
		end := 0x110000
		if k+1 < len(ref.Sigma) {
			end = ref.Sigma[k+1][0]
		}
		for cp := run[0]; cp < end && len(diffs) < 20; cp++ {
			r := rune(cp)
			if !utf8.ValidRune(r) || unassigned[cp] {
				continue
			}
			c := string(r)
			want, ok := lower[r]
			if !ok {
				want = c
			}
			if got := pyLower(c); got != want {
				diffs = append(diffs, fmt.Sprintf("lower(U+%04X) = %q, want %q", cp, got, want))
			}
			bits := 0
			if strings.HasSuffix(pyLower(c+"Σ"), "ς") {
				bits |= 1
			}
			if strings.HasSuffix(pyLower("A"+c+"Σ"), "ς") {
				bits |= 2
			}
			if strings.HasPrefix(pyLower("AΣ"+c), "aς") {
				bits |= 4
			}
			if bits != run[1] {
				diffs = append(diffs, fmt.Sprintf("final sigma next to U+%04X: bits %03b, want %03b", cp, bits, run[1]))
			}
			if isPySpace(r) != space[r] {
				diffs = append(diffs, fmt.Sprintf("U+%04X: isPySpace %v, want %v", cp, isPySpace(r), space[r]))
			}
		}
	}
	if len(diffs) > 0 {
		t.Errorf("%d differences from Python (first 20):\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
}

func FuzzPreCaption(f *testing.F) {
	for _, s := range preCaptionCorpus()[:50] {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, s string, maxWords int) {
		got := PreCaption(s, maxWords%300)
		if !utf8.ValidString(got) {
			t.Fatalf("PreCaption(%q) = %q: not valid UTF-8", s, got)
		}
		if strings.HasPrefix(got, " ") || strings.HasSuffix(got, " ") || strings.Contains(got, "  ") {
			t.Fatalf("PreCaption(%q) = %q: stray spaces", s, got)
		}
		if mw := maxWords % 300; mw > 0 && strings.Count(got, " ") >= mw {
			t.Fatalf("PreCaption(%q, %d) = %q: too many words", s, mw, got)
		}
	})
}
