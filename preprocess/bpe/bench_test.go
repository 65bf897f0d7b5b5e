package bpe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchText is realistic English prose: the GPL-3 text every Debian system
// ships, or else the project's specs beside the repository.
func benchText(b *testing.B) string {
	b.Helper()
	if raw, err := os.ReadFile("/usr/share/common-licenses/GPL-3"); err == nil {
		return string(raw)
	}
	files, _ := filepath.Glob(filepath.Join(bpeDir(b), "..", "specs", "*.md"))
	var text []byte
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		text = append(text, raw...)
	}
	if len(text) == 0 {
		b.Fatal("no English text to benchmark with")
	}
	return string(text)
}

func loadForBench(b *testing.B, cacheSize int) *Tokenizer {
	b.Helper()
	d := bpeDir(b)
	tok, err := LoadFairseq(filepath.Join(d, "encoder.json"), filepath.Join(d, "vocab.bpe"), filepath.Join(d, "dict.txt"),
		Options{Added: OFAAddedTokens(), CacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// BenchmarkEncode compares the word cache against no cache on the same
// text in the same run; the tokens/s metric is the throughput goal.
func BenchmarkEncode(b *testing.B) {
	text := benchText(b)
	for _, c := range []struct {
		name  string
		cache int
	}{{"cached", 0}, {"uncached", -1}} {
		b.Run(c.name, func(b *testing.B) {
			tok := loadForBench(b, c.cache)
			ids := tok.AppendEncode(nil, text) // warms the cache
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for b.Loop() {
				ids = tok.AppendEncode(ids[:0], text)
			}
			b.ReportMetric(float64(len(ids))*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkEncodeParallel is the server's case: many goroutines share one
// Tokenizer (and its cache).
func BenchmarkEncodeParallel(b *testing.B) {
	text := benchText(b)
	tok := loadForBench(b, 0)
	n := len(tok.Encode(text))
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ids := make([]int32, 0, n)
		for pb.Next() {
			ids = tok.AppendEncode(ids[:0], text)
		}
	})
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkEncodePrompt is one request's text.
func BenchmarkEncodePrompt(b *testing.B) {
	tok := loadForBench(b, 0)
	const prompt = ` can image and text1 " two dogs are running through a snowy field. " imply text2 " the animals are outside. "?`
	ids := tok.Encode(prompt)
	for b.Loop() {
		ids = tok.AppendEncode(ids[:0], prompt)
	}
}

func BenchmarkLoadFairseq(b *testing.B) {
	for b.Loop() {
		loadForBench(b, 0)
	}
}

// BenchmarkEncodeLongWord is the worst case per byte: one 16 KiB
// pre-token, merged by the heap method and never cached.
func BenchmarkEncodeLongWord(b *testing.B) {
	tok := loadForBench(b, 0)
	text := strings.Repeat("abcdefghijklmnopqrstuvwxyz", 16<<10/26)
	b.SetBytes(int64(len(text)))
	ids := tok.Encode(text)
	for b.Loop() {
		ids = tok.AppendEncode(ids[:0], text)
	}
	b.ReportMetric(float64(len(ids))*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
