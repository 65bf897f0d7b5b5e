package server

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"
)

// A burst of large requests grows the heap, and Go's scavenger returns the
// freed pages to the OS only slowly, so RSS stays at the burst's peak for
// minutes. memoryReturner watches the heap and, once it has shrunk well below
// the peak seen since the last return, calls debug.FreeOSMemory (a forced GC
// that returns every free page at once). It runs with Serve's context and
// holds no package-level state; its clock, heap reading and free are fields,
// so a test drives it step by step.
type memoryReturner struct {
	interval time.Duration
	heap     func() uint64 // bytes of live heap objects
	free     func()
	peak     uint64
}

// returnMinBytes is the least shrink worth a forced GC: below it, the
// scavenger's pace is fine.
const returnMinBytes = 64 << 20

func newMemoryReturner(interval time.Duration) *memoryReturner {
	return &memoryReturner{interval: interval, heap: heapInUse, free: debug.FreeOSMemory}
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// shouldReturn is the decision: the heap is now under half the peak, and the
// two differ by at least returnMinBytes.
func shouldReturn(peak, now uint64) bool {
	return now < peak/2 && peak-now >= returnMinBytes
}

// step reads the heap once, frees when it should and reports whether it did.
func (m *memoryReturner) step() bool {
	now := m.heap()
	if now > m.peak {
		m.peak = now
	}
	if !shouldReturn(m.peak, now) {
		return false
	}
	m.free()
	m.peak = m.heap()
	return true
}

// run steps every interval until ctx is done.
func (m *memoryReturner) run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.step()
		}
	}
}
