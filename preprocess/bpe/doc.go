// Package bpe is a GPT-2 byte-level BPE tokenizer in pure Go: the tokenizer
// OFA and BART use, reproducing fairseq's GPT2BPE and Hugging Face's slow
// GPT2/BartTokenizer id for id.
//
// Encoding runs in three steps. A hand-written scanner splits the text the
// way GPT-2's pre-tokenizer regex does,
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// (Go's regexp has no lookahead), with the Unicode classes of Python's regex
// module: \p{L} and \p{N} are Unicode's general categories, \s is the
// White_Space property (so U+0085 is a space and U+FEFF is not). Each piece's
// UTF-8 bytes are then merged pairwise, lowest merge rank first, exactly as
// GPT-2's bpe() does, and each resulting symbol is mapped to an output id
// through the vocabulary the Tokenizer was loaded with.
//
// Two vocabularies are supported. LoadHF reads the files a Hugging Face
// checkpoint ships (vocab.json + merges.txt); for OFA/BART that vocab.json
// already holds BART ids. LoadFairseq reads fairseq's encoder.json +
// vocab.bpe + dict.txt and yields the ids of fairseq's Dictionary: <s>=0,
// <pad>=1, </s>=2, <unk>=3, then 4 + the line number in dict.txt of the
// GPT-2 id. In both, Options.Added appends tokens such as OFA's <mask>,
// <code_i> and <bin_i> (see OFAAddedTokens), skipping any already present.
//
// Special and added tokens are never recognised inside text: Encode treats
// "<s>" or "<code_5>" typed by a user as plain characters, as fairseq's
// GPT2BPE (the tokenizer OFA was trained with) does, so user text cannot
// inject control tokens. Callers add <s> and </s> themselves (see ID).
// This differs from Hugging Face's tokenizer call, which splits added tokens
// out of the text first.
//
// Input that is not valid UTF-8 is still encoded losslessly: each invalid
// byte is classified as U+FFFD (a symbol) by the scanner, but its own byte is
// what gets merged, so Decode(Encode(s)) == s for every string.
//
// A Tokenizer is immutable after loading except for its bounded word cache,
// and is safe for concurrent use.
package bpe
