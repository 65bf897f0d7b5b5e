package libtorch

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"
)

// TestParity runs every fixture at batch sizes 1..16 and compares with the outputs Python recorded.
func TestParity(t *testing.T) {
	idx := loadIndex(t)
	names := make([]string, 0, len(idx.Models))
	for name := range idx.Models {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fm := idx.Models[name]
		t.Run(name, func(t *testing.T) {
			prec, err := ParseDType(fm.Precision)
			if err != nil {
				t.Fatal(err)
			}
			m := fixtureModule(t, strings.TrimSuffix(fm.File, ".pt"), Options{Precision: prec})
			if len(fm.Cases) != 16 {
				t.Fatalf("%d cases, want batch sizes 1..16", len(fm.Cases))
			}
			for _, c := range fm.Cases {
				got, err := m.Forward(context.Background(), loadTensors(t, c.Inputs))
				if err != nil {
					t.Fatalf("batch %d: %v", c.Batch, err)
				}
				if err := compareOutputsTol(got, loadTensors(t, c.Outputs), precisionTol(prec)); err != nil {
					t.Errorf("batch %d: %v", c.Batch, err)
				}
			}
		})
	}
}

// TestForwardIntoParity runs every fixture through ForwardInto, reusing one output set across batch sizes
// 16 down to 1 and back up (so buffers are reused, outgrown and regrown), and compares with Python. The
// dtypes fixture (ten inputs and outputs) takes the pinned fallback path.
func TestForwardIntoParity(t *testing.T) {
	idx := loadIndex(t)
	for name, fm := range idx.Models {
		t.Run(name, func(t *testing.T) {
			prec, err := ParseDType(fm.Precision)
			if err != nil {
				t.Fatal(err)
			}
			m := fixtureModule(t, strings.TrimSuffix(fm.File, ".pt"), Options{Precision: prec})
			var outs []Tensor
			order := []int{15, 7, 0, 3, 15, 1}
			for _, ci := range order {
				c := fm.Cases[ci]
				outs, err = m.ForwardInto(context.Background(), loadTensors(t, c.Inputs), outs)
				if err != nil {
					t.Fatalf("batch %d: %v", c.Batch, err)
				}
				if err := compareOutputsTol(outs, loadTensors(t, c.Outputs), precisionTol(prec)); err != nil {
					t.Errorf("batch %d: %v", c.Batch, err)
				}
			}
		})
	}
}

// TestForwardIntoReuse: once the outputs fit, ForwardInto allocates nothing and returns the same memory;
// the tensors Forward returns are not overwritten by later calls.
func TestForwardIntoReuse(t *testing.T) {
	m := fixtureModule(t, "multi", Options{})
	in, want := multiCase(t, 4)
	ctx := context.Background()
	outs, err := m.ForwardInto(ctx, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := unsafe.SliceData(outs[0].Data)
	allocs := testing.AllocsPerRun(50, func() {
		if outs, err = m.ForwardInto(ctx, in, outs); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ForwardInto with outputs that fit: %v allocations per call, want 0", allocs)
	}
	if unsafe.SliceData(outs[0].Data) != data {
		t.Error("ForwardInto did not reuse the output buffer")
	}
	if err := compareOutputs(outs, want); err != nil {
		t.Fatal(err)
	}
	// A smaller batch fits in the same buffer; a bigger one grows it.
	in1, want1 := multiCase(t, 1)
	if outs, err = m.ForwardInto(ctx, in1, outs); err != nil {
		t.Fatal(err)
	}
	if err := compareOutputs(outs, want1); err != nil {
		t.Fatal(err)
	}
	if unsafe.SliceData(outs[0].Data) != data {
		t.Error("ForwardInto did not reuse a buffer large enough")
	}
	in9, want9 := multiCase(t, 9)
	if outs, err = m.ForwardInto(ctx, in9, outs); err != nil {
		t.Fatal(err)
	}
	if err := compareOutputs(outs, want9); err != nil {
		t.Fatal(err)
	}
	// Forward's results are the caller's: a later call leaves them alone.
	first, err := m.Forward(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := m.Forward(ctx, in1); err != nil {
			t.Fatal(err)
		}
	}
	if err := compareOutputs(first, want); err != nil {
		t.Errorf("Forward's result changed after later calls: %v", err)
	}
	// Errors keep the caller's memory for the next call.
	kept, err := m.ForwardInto(ctx, in[:1], outs)
	if err == nil || !strings.Contains(err.Error(), "wrong number of inputs") {
		t.Fatalf("one input of two: %v", err)
	}
	if len(kept) != 0 || cap(kept) != cap(outs) {
		t.Errorf("after an error: len %d cap %d, want 0 and %d", len(kept), cap(kept), cap(outs))
	}
}

// TestForwardHighRank: a rank above what the one-call path describes (8) takes the fallback for inputs
// and outputs alike; rank 8 stays on the fast path. The raises fixture returns x*2 for any shape.
func TestForwardHighRank(t *testing.T) {
	m := fixtureModule(t, "raises", Options{})
	for _, rank := range []int{0, 1, 8, 9, 12} {
		shape := make([]int64, rank)
		for i := range shape {
			shape[i] = 1
		}
		if rank > 0 {
			shape[rank-1] = 3
		}
		x := Tensor{DType: Float32, Shape: shape, Data: make([]byte, 4*(x3(rank)))}
		for i := 0; i < x3(rank); i++ {
			binary.LittleEndian.PutUint32(x.Data[4*i:], math.Float32bits(float32(i)+0.5))
		}
		want := Tensor{DType: Float32, Shape: shape, Data: make([]byte, len(x.Data))}
		for i := 0; i < x3(rank); i++ {
			binary.LittleEndian.PutUint32(want.Data[4*i:], math.Float32bits(2*(float32(i)+0.5)))
		}
		var outs []Tensor
		for i := 0; i < 2; i++ { // once into nothing, once into the buffers of the first call
			got, err := m.ForwardInto(context.Background(), []Tensor{x}, outs)
			if err != nil {
				t.Fatalf("rank %d: %v", rank, err)
			}
			if err := compareOutputs(got, []Tensor{want}); err != nil {
				t.Errorf("rank %d: %v", rank, err)
			}
			outs = got
		}
	}
}

// x3 is the element count of the shapes TestForwardHighRank builds: 3 (the last dimension), 1 for a scalar.
func x3(rank int) int {
	if rank == 0 {
		return 1
	}
	return 3
}

// multiInputs returns the multi fixture's inputs at batch b (x f32[b,4], ids i64[b,3]) and its outputs.
func multiCase(t testing.TB, b int) (in, want []Tensor) {
	t.Helper()
	c := loadIndex(t).Models["multi"].Cases[b-1]
	if c.Batch != b {
		t.Fatalf("case %d has batch %d", b-1, c.Batch)
	}
	return loadTensors(t, c.Inputs), loadTensors(t, c.Outputs)
}

// rss returns the resident set size in bytes, from /proc/self/statm.
func rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

// TestConcurrentNoLeak: 8 goroutines each run 1000 forwards on each of two modules (shared by all
// goroutines; half of them through Forward, half through ForwardInto), every result checked; RSS after the loop stays within 10% of RSS after the first 100.
func TestConcurrentNoLeak(t *testing.T) {
	const goroutines, perModule, warm = 8, 1000, 100
	idx := loadIndex(t)
	type work struct {
		m     *Module
		cases [][2][]Tensor
	}
	var mods []work
	for _, name := range []string{"tiny", "multi"} {
		w := work{m: fixtureModule(t, name, Options{})}
		for _, c := range idx.Models[name].Cases {
			w.cases = append(w.cases, [2][]Tensor{loadTensors(t, c.Inputs), loadTensors(t, c.Outputs)})
		}
		mods = append(mods, w)
	}
	run := func(from, to int) {
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				outs := make([][]Tensor, len(mods)) // odd goroutines reuse their outputs (ForwardInto)
				for i := from; i < to; i++ {
					for k, w := range mods {
						c := w.cases[(g*7+i)%len(w.cases)]
						var got []Tensor
						var err error
						if g%2 == 1 {
							got, err = w.m.ForwardInto(context.Background(), c[0], outs[k])
							outs[k] = got
						} else {
							got, err = w.m.Forward(context.Background(), c[0])
						}
						if err == nil {
							err = compareOutputs(got, c[1])
						}
						if err != nil {
							errs <- err
							return
						}
					}
				}
			}(g)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	settle := func() int64 {
		runtime.GC()
		debug.FreeOSMemory()
		return rss(t)
	}
	run(0, warm)
	before := settle()
	run(warm, perModule)
	after := settle()
	t.Logf("RSS after %d forwards: %.1f MiB; after %d: %.1f MiB", goroutines*2*warm, float64(before)/(1<<20),
		goroutines*2*perModule, float64(after)/(1<<20))
	if float64(after) > 1.10*float64(before) {
		t.Errorf("RSS grew from %d to %d bytes (> 10%%): leak", before, after)
	}
}

// FuzzForward feeds arbitrary dtypes, shapes and buffers to a module: each call returns outputs or an
// error, never crashes, and the module keeps working.
func FuzzForward(f *testing.F) {
	f.Add(uint8(0), []byte{2, 4}, 32, uint8(3), []byte{2, 3}, 48)
	f.Add(uint8(0), []byte{2, 4}, 31, uint8(3), []byte{2, 3}, 48)
	f.Add(uint8(6), []byte{}, 1, uint8(3), []byte{1, 1, 1}, 8)
	f.Add(uint8(200), []byte{0, 4}, 0, uint8(4), []byte{0, 3}, 0)
	m, err := Load(filepath.Join(fixtureDir, "multi.pt"), Options{Device: testDevice()})
	if err != nil {
		f.Fatal(err)
	}
	defer m.Close()
	in, want := multiCase(f, 2)
	mk := func(dt uint8, dims []byte, n int) Tensor {
		shape := make([]int64, 0, len(dims))
		for _, d := range dims {
			shape = append(shape, int64(int8(d))) // negative dimensions too
		}
		if n < 0 || n > 1<<16 {
			n = 0
		}
		return Tensor{DType: DType(dt % 12), Shape: shape, Data: make([]byte, n)}
	}
	f.Fuzz(func(t *testing.T, dt1 uint8, dims1 []byte, n1 int, dt2 uint8, dims2 []byte, n2 int) {
		if len(dims1) > 6 || len(dims2) > 6 {
			return
		}
		_, _ = m.Forward(context.Background(), []Tensor{mk(dt1, dims1, n1), mk(dt2, dims2, n2)})
		got, err := m.Forward(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if err := compareOutputs(got, want); err != nil {
			t.Fatal(err)
		}
	})
}

// BenchmarkForward measures one Go -> shim -> forward -> Go call on the tiny fixture (f32[8,16] ->
// f32[8,4]) on the device under test, with outputs in new memory (Forward). Besides ns/op it reports
// cpu-ns/op, the process's user+system time per call, which a busy machine disturbs less.
//
// Sub-benchmarks: "server" yields to the Go scheduler every 100 calls (runtime.Gosched, a few ns per
// call), as a server's goroutine does when it waits for its next batch; "tight" never yields. A goroutine
// that never reaches the scheduler looks to the runtime like one stuck in a 10 ms-long call: sysmon then
// forces a preemption and hands its P to another thread mid-call every 10 ms, and itself wakes thousands
// of times a second, which costs the process ~10% CPU in this loop (see the README's Benchmarks section).
func BenchmarkForward(b *testing.B) {
	benchForward(b, func(m *Module, ctx context.Context, in []Tensor) error {
		_, err := m.Forward(ctx, in)
		return err
	})
}

// BenchmarkForwardInto is BenchmarkForward through ForwardInto with the outputs reused from call to call,
// as backends that consume outputs within the call do (backend/ofa). scripts/bench/bench_shim_overhead.sh
// compares it with the same module called directly from C++ (build/ofatorch_bench_direct).
func BenchmarkForwardInto(b *testing.B) {
	var outs []Tensor
	benchForward(b, func(m *Module, ctx context.Context, in []Tensor) (err error) {
		outs, err = m.ForwardInto(ctx, in, outs)
		return err
	})
}

func benchForward(b *testing.B, call func(*Module, context.Context, []Tensor) error) {
	m := fixtureModule(b, "tiny", Options{})
	x := Tensor{DType: Float32, Shape: []int64{8, 16}, Data: make([]byte, 8*16*4)}
	for i := 0; i < 8*16; i++ {
		binary.LittleEndian.PutUint32(x.Data[4*i:], math.Float32bits(float32(i%7)*0.25-0.5))
	}
	in := []Tensor{x}
	ctx := context.Background()
	for i := 0; i < 200; i++ { // let the profiling executor settle, as the C++ baseline does
		if err := call(m, ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name  string
		yield int // calls between runtime.Gosched, 0 for never
	}{{"server", 100}, {"tight", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0, n := processCPU(b), 0
			for b.Loop() {
				if err := call(m, ctx, in); err != nil {
					b.Fatal(err)
				}
				n++
				if bc.yield > 0 && n%bc.yield == 0 {
					runtime.Gosched()
				}
			}
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(n), "cpu-ns/op")
		})
	}
}

// processCPU returns the user+system CPU time of the whole process in nanoseconds.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
