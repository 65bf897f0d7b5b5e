package server

import (
	"context"
	"testing"
	"time"
)

func TestShouldReturn(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct {
		name      string
		peak, now uint64
		want      bool
	}{
		{"shrunk a lot", 1000 * mb, 100 * mb, true},
		{"at the peak", 1000 * mb, 1000 * mb, false},
		{"shrunk less than half", 1000 * mb, 600 * mb, false},
		{"small heap", 60 * mb, 10 * mb, false},
		{"under half but less than 64MiB freed", 100 * mb, 40 * mb, false},
		{"just over 64MiB freed", 128 * mb, 64*mb - 1, true},
		{"more than half and 64MiB", 200 * mb, 80 * mb, true},
	} {
		if got := shouldReturn(tc.peak, tc.now); got != tc.want {
			t.Errorf("%s: shouldReturn(%d, %d) = %v, want %v", tc.name, tc.peak, tc.now, got, tc.want)
		}
	}
}

func TestMemoryReturnerSteps(t *testing.T) {
	const mb = 1 << 20
	heaps := []uint64{50 * mb, 900 * mb, 800 * mb, 100 * mb, 90 * mb, 80 * mb}
	i, frees := 0, 0
	m := &memoryReturner{
		heap: func() uint64 { h := heaps[min(i, len(heaps)-1)]; i++; return h },
		free: func() { frees++ },
	}
	var got []bool
	for range 4 {
		got = append(got, m.step())
	}
	// 50 (peak 50), 900 (peak 900), 800, 100 -> free (then reads 90 as the new peak).
	want := []bool{false, false, false, true}
	for k := range want {
		if got[k] != want[k] {
			t.Fatalf("steps = %v, want %v", got, want)
		}
	}
	if frees != 1 || m.peak != 90*mb {
		t.Fatalf("frees = %d, peak = %d; want 1 and %d", frees, m.peak, 90*mb)
	}
	if m.step() {
		t.Fatal("freed again right after a return")
	}
}

func TestMemoryReturnerStopsWithContext(t *testing.T) {
	m := &memoryReturner{interval: time.Millisecond, heap: func() uint64 { return 0 }, free: func() {}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.run(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
}
