package libtorch

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestNumThreadsRoundTrip: a count set on one OS thread is what every thread reports afterwards, including
// one that ran forwards (and so fixed its OpenMP setting) before the change.
func TestNumThreadsRoundTrip(t *testing.T) {
	orig := NumThreads()
	if orig < 1 {
		t.Fatalf("NumThreads() = %d before any setting", orig)
	}
	t.Cleanup(func() {
		if err := SetNumThreads(orig); err != nil {
			t.Error(err)
		}
	})
	m := fixtureModule(t, "tiny", Options{})
	in := []Tensor{{DType: Float32, Shape: []int64{64, 16}, Data: make([]byte, 64*16*4)}}

	// A goroutine on an OS thread of its own: it runs a forward now, and reports after each change.
	ask, answer := make(chan struct{}), make(chan int)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for range ask {
			if _, err := m.Forward(context.Background(), in); err != nil {
				t.Error(err)
			}
			answer <- NumThreads()
		}
		close(answer)
	}()
	defer close(ask)
	ask <- struct{}{}
	if got := <-answer; got != orig {
		t.Fatalf("the other thread reports %d threads, this one %d", got, orig)
	}

	for _, n := range []int{orig + 1, 1, 3} {
		runtime.LockOSThread()
		err := SetNumThreads(n)
		got := NumThreads()
		runtime.UnlockOSThread()
		if err != nil {
			t.Fatalf("SetNumThreads(%d): %v", n, err)
		}
		if got != n || ConfiguredNumThreads() != n {
			t.Errorf("after SetNumThreads(%d): NumThreads() = %d, ConfiguredNumThreads() = %d", n, got, ConfiguredNumThreads())
		}
		ask <- struct{}{}
		if other := <-answer; other != n {
			t.Errorf("after SetNumThreads(%d), a thread that ran forwards before reports %d", n, other)
		}
		if _, err := m.Forward(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSetThreadsRejectsBadCounts(t *testing.T) {
	before, beforeInterop := NumThreads(), NumInteropThreads()
	for _, n := range []int{0, -1, MaxThreads + 1} {
		if err := SetNumThreads(n); err == nil || !strings.Contains(err.Error(), "intra-op threads") {
			t.Errorf("SetNumThreads(%d) = %v, want an error about intra-op threads", n, err)
		}
		if err := SetNumInteropThreads(n); err == nil || !strings.Contains(err.Error(), "inter-op threads") {
			t.Errorf("SetNumInteropThreads(%d) = %v, want an error about inter-op threads", n, err)
		}
	}
	if NumThreads() != before || NumInteropThreads() != beforeInterop {
		t.Errorf("rejected counts changed the settings: %d -> %d intra, %d -> %d inter", before, NumThreads(), beforeInterop, NumInteropThreads())
	}
}

// TestInteropThreadsOnce runs in a fresh process (libtorch fixes the inter-op pool once per process): the
// first setting takes, a second one fails with libtorch's reason and leaves the first.
func TestInteropThreadsOnce(t *testing.T) {
	if os.Getenv("OFASERVE_INTEROP_CHILD") == "1" {
		interopChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestInteropThreadsOnce$", "-test.v", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), "OFASERVE_INTEROP_CHILD=1", "OFASERVE_FIXTURES="+fixtureDir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "interop child ok") {
		t.Fatalf("child process: %v\n%s", err, out)
	}
}

func interopChild(t *testing.T) {
	want := NumInteropThreads() + 1 // reading the size must not start the pool
	if err := SetNumInteropThreads(want); err != nil {
		t.Fatalf("first SetNumInteropThreads(%d): %v", want, err)
	}
	if got := NumInteropThreads(); got != want {
		t.Fatalf("NumInteropThreads() = %d after setting %d", got, want)
	}
	err := SetNumInteropThreads(want + 1)
	if err == nil || !strings.Contains(err.Error(), "inter-op threads") {
		t.Fatalf("second SetNumInteropThreads = %v, want an error", err)
	}
	if got := NumInteropThreads(); got != want {
		t.Fatalf("NumInteropThreads() = %d after a refused second setting, want %d", got, want)
	}
	t.Log("interop child ok: " + strconv.Itoa(want) + "; second setting refused: " + err.Error())
}
