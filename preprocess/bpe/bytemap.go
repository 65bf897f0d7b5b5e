package bpe

// GPT-2 spells every vocabulary token as text by mapping each of the 256
// byte values to one printable rune: the printable Latin-1 bytes ('!'..'~',
// '¡'..'¬', '®'..'ÿ') stand for themselves, the other 68 bytes take the runes
// U+0100, U+0101, ... in byte order. Vocabulary and merges files are written
// in that spelling; the tokenizer works on raw bytes internally.

// byteRunes maps each byte to the rune that spells it in vocabulary files,
// and back.
type byteRunes struct {
	toRune   [256]rune
	fromRune [256 + 68]int16 // -1: the rune stands for no byte
}

func newByteRunes() *byteRunes {
	m := &byteRunes{}
	for i := range m.fromRune {
		m.fromRune[i] = -1
	}
	next := rune(256)
	for b := 0; b < 256; b++ {
		r := rune(b)
		if !printableByte(byte(b)) {
			r = next
			next++
		}
		m.toRune[b] = r
		m.fromRune[r] = int16(b)
	}
	return m
}

func printableByte(b byte) bool {
	return ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || 0xAE <= b
}

// unspell turns a vocabulary spelling back into raw bytes. ok is false when
// the spelling holds a rune that stands for no byte. (Special and added
// tokens such as "<s>" or "<code_0>" are written in printable ASCII and so
// unspell to themselves.)
func (m *byteRunes) unspell(tok string) (raw string, ok bool) {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		if r < 0 || int(r) >= len(m.fromRune) || m.fromRune[r] < 0 {
			return "", false
		}
		out = append(out, byte(m.fromRune[r]))
	}
	return string(out), true
}
