package prompt

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestBuild(t *testing.T) {
	b := newBuilder(t, Config{})
	cases := []struct {
		premise, hypothesis string
		want                []int64
	}{
		// The check value of issue 6 and the worked examples of
		// docs/ofa-visual-entailment.md §3.3, computed there independently.
		{"", "two dogs play", []int64{0, 473, 5, 2274, 6190, 22, 80, 3678, 310, 22, 116, 2}},
		{"", "Two  Dogs-play", []int64{0, 473, 5, 2274, 6190, 22, 80, 3678, 310, 22, 116, 2}},
		{"", "There are two birds.", []int64{0, 473, 5, 2274, 6190, 22, 89, 32, 80, 7723, 4, 22, 116, 2}},
		{"There are two dogs.", "The two dogs are eating.", []int64{0, 64, 2274, 8, 2788, 134, 22, 89, 32, 80, 3678, 4,
			22, 25696, 2788, 176, 22, 5, 80, 3678, 32, 4441, 4, 22, 116, 2}},
		{"...there are TWO dogs.\n", "the two dogs are eating.  ", []int64{0, 64, 2274, 8, 2788, 134, 22, 89, 32, 80, 3678, 4,
			22, 25696, 2788, 176, 22, 5, 80, 3678, 32, 4441, 4, 22, 116, 2}},
	}
	for _, c := range cases {
		got, err := b.Build(c.premise, c.hypothesis)
		if err != nil {
			t.Errorf("Build(%q, %q): %v", c.premise, c.hypothesis, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("Build(%q, %q) =\n %v\nwant %v", c.premise, c.hypothesis, got, c.want)
		}
	}
}

func TestPrompt(t *testing.T) {
	b := newBuilder(t, Config{})
	cases := []struct{ premise, hypothesis, want string }{
		{"", "Two dogs play.", ` does the image describe " two dogs play. "?`},
		{"A Man-Made lake", "Water.", ` can image and text1 " a man made lake " imply text2 " water. "?`},
		{"...", "water", ` can image and text1 "  " imply text2 " water "?`},
	}
	for _, c := range cases {
		got, err := b.Prompt(c.premise, c.hypothesis)
		if err != nil || got != c.want {
			t.Errorf("Prompt(%q, %q) = %q, %v; want %q", c.premise, c.hypothesis, got, err, c.want)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	b := newBuilder(t, Config{})
	huge := strings.Repeat("a dog ", 1<<20/6+1)
	cases := []struct {
		name, premise, hypothesis string
		want                      error
		mention                   string
	}{
		{"invalid hypothesis", "", "two \xff dogs", ErrInvalidUTF8, "hypothesis"},
		{"invalid premise", "a\xc3", "dogs", ErrInvalidUTF8, "premise"},
		{"1 MB hypothesis", "", huge, ErrTooLong, "16384 bytes"},
		{"1 MB premise", huge, "dogs", ErrTooLong, "premise"},
		{"empty hypothesis", "", "", ErrEmpty, "hypothesis"},
		{"blank hypothesis", "a lake", " \n\t ", ErrEmpty, "hypothesis"},
		{"punctuation only", "", ".!?", ErrEmpty, "hypothesis"},
	}
	for _, c := range cases {
		ids, err := b.Build(c.premise, c.hypothesis)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: Build = %v, %v; want %v mentioning %q", c.name, ids, err, c.want, c.mention)
		}
	}
}

func TestTruncation(t *testing.T) {
	long := strings.Repeat("dog ", 400) // 400 words
	full := newBuilder(t, Config{MaxWords: -1, MaxTokens: -1})
	all, err := full.Build("", long)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 400+7+2 { // 400 " dog" tokens, 7 template tokens, bos, eos
		t.Fatalf("untruncated prompt has %d ids, want 409", len(all))
	}

	// ModelScope's defaults: 256 words, then 256 tokens + bos + eos.
	dflt := newBuilder(t, Config{})
	got, err := dflt.Build("", long)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 258 || got[0] != 0 || got[257] != 2 || !slices.Equal(got[1:257], all[1:257]) {
		t.Errorf("default truncation: %d ids %v...%v, want 258 = [0] + first 256 + [2]", len(got), got[:3], got[len(got)-3:])
	}

	// The word limit alone.
	words := newBuilder(t, Config{MaxWords: 3, MaxTokens: -1})
	got, err = words.Build("", long)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := full.Build("", "dog dog dog")
	if !slices.Equal(got, want) {
		t.Errorf("MaxWords 3: %v, want %v", got, want)
	}

	// The token limit cuts the prompt's tail, then eos is appended.
	toks := newBuilder(t, Config{MaxTokens: 5})
	got, _ = toks.Build("", "two dogs play")
	if want := []int64{0, 473, 5, 2274, 6190, 22, 2}; !slices.Equal(got, want) {
		t.Errorf("MaxTokens 5: %v, want %v", got, want)
	}

	// A larger byte limit admits a long text, which is then truncated.
	big := newBuilder(t, Config{MaxInputBytes: 1 << 21})
	got, err = big.Build("", strings.Repeat("dog ", 1<<18))
	if err != nil || len(got) != 258 {
		t.Errorf("MaxInputBytes 2 MiB: %d ids, %v; want 258", len(got), err)
	}
}

func TestTemplates(t *testing.T) {
	b := newBuilder(t, Config{
		Template:        `{{hypothesis}}: {0}`,
		PremiseTemplate: `{1} <- {0}`,
	})
	for _, c := range []struct{ premise, hypothesis, want string }{
		{"", "Dogs", `{hypothesis}: dogs`},
		{"A Lake", "Water", `water <- a lake`},
	} {
		got, err := b.Prompt(c.premise, c.hypothesis)
		if err != nil || got != c.want {
			t.Errorf("Prompt(%q, %q) = %q, %v; want %q", c.premise, c.hypothesis, got, err, c.want)
		}
	}
	bad := []struct {
		cfg  Config
		want string
	}{
		{Config{Template: "no field"}, "does not use argument 0"},
		{Config{Template: "{} and {}"}, "uses argument 1 of 1"},
		{Config{Template: "{name}"}, "not supported"},
		{Config{Template: "{0:>5}"}, "not supported"},
		{Config{Template: "{"}, "unclosed"},
		{Config{Template: "}"}, "single '}'"},
		{Config{PremiseTemplate: "{} {1}"}, "mixes"},
		{Config{PremiseTemplate: "{1} {}"}, "mixes"},
		{Config{PremiseTemplate: "only {}"}, "does not use argument 1"},
		{Config{Bos: "<nope>"}, `no token "<nope>"`},
	}
	for _, c := range bad {
		if _, err := New(ofaTokenizer(t), c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) error = %v, want one containing %q", c.cfg, err, c.want)
		}
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Error("New(nil) gave no error")
	}
}

func FuzzBuild(f *testing.F) {
	f.Add("", "two dogs play")
	f.Add("a lake", "water\n")
	f.Add("\xff", "x")
	f.Add("", "<s> </s> <code_1>")
	b := newBuilder(f, Config{MaxTokens: 40})
	f.Fuzz(func(t *testing.T, premise, hypothesis string) {
		ids, err := b.Build(premise, hypothesis)
		if err != nil {
			if !errors.Is(err, ErrInvalidUTF8) && !errors.Is(err, ErrTooLong) && !errors.Is(err, ErrEmpty) {
				t.Fatalf("Build(%q, %q): unexpected error kind %v", premise, hypothesis, err)
			}
			return
		}
		if len(ids) < 3 || len(ids) > 42 || ids[0] != 0 || ids[len(ids)-1] != 2 {
			t.Fatalf("Build(%q, %q) = %v: want [0] + 1..40 ids + [2]", premise, hypothesis, ids)
		}
		for _, id := range ids[1 : len(ids)-1] {
			if id < 4 || id >= 50264 {
				t.Fatalf("Build(%q, %q) = %v: special id %d from text", premise, hypothesis, ids, id)
			}
		}
	})
}
