package bpe

import (
	"math/rand/v2"
	"strings"
)

// handCorpus covers each branch of the pre-tokenizer and the merge paths.
var handCorpus = []string{
	"", " ", "  ", "\n", "\t", "a", "A", "hello", " hello", "Hello world", "Hello world!",
	` does the image describe " two dogs play "?`,
	` can image and text1 " there are two dogs. " imply text2 " the two dogs are eating. "?`,
	"The quick brown fox jumps over the lazy dog.",
	"A man in a blue shirt is riding a bicycle down the street.",
	"Two dogs are playing in the snow; one is brown, the other is white.",
	// punctuation
	"Hello, world... what?!", "(parenthesised) [bracketed] {braced} <angled>", "a--b---c", "e.g. i.e. etc.",
	"#hashtag @mention $100 %50 ^caret &amp *star", "!!!!!!!!!!!!!!!!!!!!!", "........", "?!?!?!", "a.b,c;d:e",
	"http://example.com/path?q=1&r=2#frag", "user@example.com", "C:\\Program Files\\x", "x = y + z; // comment",
	"«quotes» „low“ “curly” ‘single’", "—em dash– en dash", "…", "•bullet", "§2 ¶3", "~tilde~", "`backtick`",
	// numbers
	"123", "1234567890", " 42", "3.14159", "1,000,000", "-17", "+44 20 7946 0958", "2024-01-02T03:04:05Z",
	"version 1.2.3-rc4", "½ ¾ ² ³ ⅓", "١٢٣٤ ٥٦", "Ⅻ Ⅳ", "۱۲۳", "𝟙𝟚𝟛", "४२",
	// whitespace runs
	"a  b", "a   b", "a    b", "a \t b", "a\t\tb", "a\n\nb", "a\r\nb", "a \n b", "trailing space ", "trailing spaces   ",
	"trailing newline\n", "trailing newlines\n\n\n", "trailing tab\t", "  leading spaces", "\tleading tab",
	"\n\nleading newlines", " \t \n mixed \t\n ", "a\u00a0b", "a\u2003b", "a\u3000b", "a \u00a0 b", "\u3000\u3000x",
	"a\vb\fc", "a\x1cb\x1fc", "a\u2028b\u2029c", "end with nbsp\u00a0", "   ", "\t\t\t", "\n \n \n",
	// contractions in both cases
	"it's", "It's", "IT'S", "don't", "DON'T", "Don'T", "they're", "THEY'RE", "we've", "WE'VE", "I'm", "I'M",
	"you'll", "YOU'LL", "he'd", "HE'D", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'", "''", "'''s", "'sup",
	"rock 'n' roll", "o'clock", "the dogs' bowls", "'quoted'", "a 's", "x'S'T'RE'VE'M'LL'D", "'ll've", "can't've",
	"’s curly apostrophe’s", "'\n's",
	// accents and combining marks
	"café", "naïve résumé", "Ångström", "Crème brûlée", "Straße", "ÀÉÎÕÜ", "São Paulo", "Zürich", "façade",
	"e\u0301", "cafe\u0301", "n\u0303o", "a\u0308\u0304", "\u0301 lone mark", "Z\u0335\u0321a\u0336l\u0337g\u0338o",
	"İstanbul", "ΣΟΦΊΑ σοφία", "ǅemal",
	// scripts
	"我们去公园散步", "日本語のテキストです。", "한국어 텍스트", "中文，标点。", "Привет, мир!", "Ελληνικά κείμενα",
	"مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "ქართული", "Հայերեն", "ᚠᚢᚦᚨᚱᚲ", "𐌰𐌱𐌲",
	"mixed 中文 and English", "Tokyo東京2020", "русский123english", "abcабвαβγ",
	// emoji and symbols
	"😀", "😀😃😄", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸🇯🇵", "I ❤️ NY", "smile 😀 please", "♥♦♣♠", "→←↑↓", "∑∫√∞", "©®™",
	"\U0001F600x", "x\U0001F600", " \U0001F600", "⚽️", "🏳️‍🌈",
	// control characters
	"\x00", "a\x00b", "\x01\x02\x03", "\x7f", "bell\a", "esc\x1b[0m",
	// long pieces (the heap path, and words too long to cache)
	strings.Repeat("a", 200), strings.Repeat(" ", 100), strings.Repeat(" ", 100) + "x", strings.Repeat("ab", 100),
	strings.Repeat("!", 150), strings.Repeat("😀", 40), strings.Repeat("中", 60), strings.Repeat("1", 120),
	strings.Repeat("\n", 70), strings.Repeat("\t ", 50) + "end",
	"Pneumonoultramicroscopicsilicovolcanoconiosis", "Supercalifragilisticexpialidocious",
	strings.Repeat("Pneumonoultramicroscopicsilicovolcanoconiosis", 3),
	"Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
	strings.Repeat("abcdefgh", 6), strings.Repeat("abcdefgh", 6) + "i", strings.Repeat("xyzzy", 13),
	strings.Repeat("0123456789", 7), strings.Repeat("aa", 33), strings.Repeat("the", 40), strings.Repeat(",", 64),
	// special-token spellings are plain text
	"<s>", "</s>", "<pad>", "<unk>", "<mask>", "<code_5>", "<bin_999>", "<|endoftext|>", "a<s>b</s>",
}

// randomCorpus builds n reproducible strings from a mixed pool of pieces.
func randomCorpus(n int) []string {
	pieces := []string{
		"the", "The", "dog", "DOGS", "image", "describe", "imply", "text1", "café", "naïve", "über", "São",
		"it's", "IT'S", "'ll", "'Ve", "don't", "o'", "'", "’", "\"", ",", ".", "!", "?", "...", "-", "/", "(", ")",
		"42", "3.14", "1,000", "½", "٣", "Ⅻ", " ", "  ", "   ", "\t", "\n", "\r\n", "\u00a0", "\u2009", "\u3000",
		"中文", "日本", "한국", "Привет", "Ελλάδα", "עברית", "العربية", "हिन्दी", "ไทย", "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷",
		"e\u0301", "\u0301", "\u0308", "\x00", "\x1f", "<s>", "<code_1>", "$", "%", "&", "#", "@", "™", "→",
		"Pneumonoultramicroscopicsilicovolcanoconiosis", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	}
	seps := []string{"", " ", " ", " ", "  ", "\n", "\t", ""}
	rng := rand.New(rand.NewPCG(6, 2024))
	out := make([]string, 0, n)
	for range n {
		var b strings.Builder
		for k := 1 + rng.IntN(12); k > 0; k-- {
			b.WriteString(pieces[rng.IntN(len(pieces))])
			b.WriteString(seps[rng.IntN(len(seps))])
		}
		out = append(out, b.String())
	}
	return out
}

func testCorpus() []string {
	return append(append([]string(nil), handCorpus...), randomCorpus(300)...)
}
