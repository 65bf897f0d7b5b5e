package prompt

import (
	"strings"
	"testing"
)

// BenchmarkBuild is one typical request, premise and hypothesis.
func BenchmarkBuild(b *testing.B) {
	bl := newBuilder(b, Config{})
	for b.Loop() {
		if _, err := bl.Build("Two dogs are running through a snowy field.", "The animals are outside."); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildWorstCase is the most expensive accepted input: 16 KiB of
// letters with no space (one pre-token, past the word cache).
func BenchmarkBuildWorstCase(b *testing.B) {
	bl := newBuilder(b, Config{})
	text := strings.Repeat("abcdefghijklmnopqrstuvwxyz", DefaultMaxInputBytes/26)
	for b.Loop() {
		if _, err := bl.Build("", text); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRejectHuge is a 1 MB hypothesis: refused by its length alone.
func BenchmarkRejectHuge(b *testing.B) {
	bl := newBuilder(b, Config{})
	text := strings.Repeat("a dog ", 1<<20/6)
	for b.Loop() {
		if _, err := bl.Build("", text); err == nil {
			b.Fatal("accepted")
		}
	}
}
