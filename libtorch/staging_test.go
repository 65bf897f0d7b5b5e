package libtorch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// stagingFor makes a Staging for a fixture whose cases have the inputs of in (capacity: batch 16).
func stagingFor(t testing.TB, m *Module, in []Tensor, slots int) *Staging {
	t.Helper()
	var specs []StagingInput
	for _, x := range in {
		max := append([]int64{16}, x.Shape[1:]...)
		specs = append(specs, StagingInput{DType: x.DType, MaxShape: max})
	}
	s, err := m.NewStaging(StagingOptions{Slots: slots, Inputs: specs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStagingMatchesForward: for every fixture with up to four inputs and outputs, at batch sizes 1..16
// in a mixed order through two slots, the staged forward gives Forward's outputs byte for byte (and so
// Python's), in float32 and in bfloat16.
func TestStagingMatchesForward(t *testing.T) {
	idx := loadIndex(t)
	for _, name := range []string{"multi", "tuple_out", "list_out", "gather", "tiny", "echo", "multi_bf16", "gather_bf16"} {
		fm, ok := idx.Models[name]
		if !ok {
			t.Fatalf("fixture %s missing", name)
		}
		t.Run(name, func(t *testing.T) {
			prec, err := ParseDType(fm.Precision)
			if err != nil {
				t.Fatal(err)
			}
			m := fixtureModule(t, strings.TrimSuffix(fm.File, ".pt"), Options{Precision: prec})
			s := stagingFor(t, m, loadTensors(t, fm.Cases[0].Inputs), 2)
			ctx := context.Background()
			var outs []Tensor
			for _, ci := range []int{15, 0, 7, 3, 15, 1, 10} {
				c := fm.Cases[ci]
				in := loadTensors(t, c.Inputs)
				want, err := m.Forward(ctx, in)
				if err != nil {
					t.Fatal(err)
				}
				st, err := s.Stage(ctx, in)
				if err != nil {
					t.Fatalf("batch %d: %v", c.Batch, err)
				}
				if outs, err = s.Forward(ctx, st, outs); err != nil {
					t.Fatalf("batch %d: %v", c.Batch, err)
				}
				if len(outs) != len(want) {
					t.Fatalf("batch %d: %d outputs, Forward gives %d", c.Batch, len(outs), len(want))
				}
				for i := range want {
					if outs[i].DType != want[i].DType || fmt.Sprint(outs[i].Shape) != fmt.Sprint(want[i].Shape) || !bytes.Equal(outs[i].Data, want[i].Data) {
						t.Errorf("batch %d output %d: staged %v %v differs from Forward's %v %v", c.Batch, i, outs[i].DType, outs[i].Shape, want[i].DType, want[i].Shape)
					}
				}
				if err := compareOutputsTol(outs, loadTensors(t, c.Outputs), precisionTol(prec)); err != nil {
					t.Errorf("batch %d against Python: %v", c.Batch, err)
				}
			}
			if st := s.Stats(); st.Staged != 7 || st.EagerForwards != 7 || st.GraphReplays != 0 {
				t.Errorf("stats %+v, want 7 staged and 7 eager forwards", st)
			}
		})
	}
}

// TestStagingReuse: the buffers are allocated once, when the Staging is made: many batches later the
// shim has allocated no staging buffer, a Stage + Forward pair allocates nothing in Go, and the echo
// fixture's outputs (which alias the slot's memory inside the shim) do not change when the slot is
// staged again.
func TestStagingReuse(t *testing.T) {
	m := fixtureModule(t, "echo", Options{})
	in := loadTensors(t, loadIndex(t).Models["echo"].Cases[3].Inputs)
	s := stagingFor(t, m, in, 2)
	st0 := s.Stats()
	// 2 slots x 2 inputs; on the CPU the device buffer is the host one, on CUDA each has both.
	wantBuffers := int64(4)
	if testDevice() != "cpu" {
		wantBuffers = 8
	}
	if st0.BufferAllocations != wantBuffers || st0.Pinned != (testDevice() != "cpu") {
		t.Fatalf("fresh staging: %+v, want %d buffers, pinned on CUDA only", st0, wantBuffers)
	}
	wantBytes := int64(2 * 16 * (3*5*7*4 + 4*8))
	if testDevice() == "cpu" && st0.BufferBytes != wantBytes {
		t.Errorf("buffers hold %d bytes, want %d", st0.BufferBytes, wantBytes)
	}
	ctx := context.Background()
	outs := make([]Tensor, 0, 2)
	run := func() {
		st, err := s.Stage(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if outs, err = s.Forward(ctx, st, outs); err != nil {
			t.Fatal(err)
		}
	}
	run()
	allocs := testing.AllocsPerRun(200, run)
	if allocs != 0 {
		t.Errorf("Stage + Forward: %v Go allocations per call, want 0", allocs)
	}
	for range 300 {
		run()
	}
	before := rss(t)
	for range 3000 {
		run()
	}
	if after := rss(t); after > before+before/10 {
		t.Errorf("RSS grew from %d to %d bytes over 3000 staged batches (> 10%%): leak", before, after)
	}
	st := s.Stats()
	if st.BufferAllocations != st0.BufferAllocations || st.BufferBytes != st0.BufferBytes {
		t.Errorf("after %d batches the staging allocated %d buffers (%d bytes), at the start %d (%d bytes)", st.Staged,
			st.BufferAllocations, st.BufferBytes, st0.BufferAllocations, st0.BufferBytes)
	}
	if !bytes.Equal(outs[0].Data, in[0].Data) || !bytes.Equal(outs[1].Data, in[1].Data) {
		t.Fatal("echo returned other values than it was given")
	}
	// Outputs that do not fit the lent buffers come back from the shim's result, which must not alias the
	// slot either: stage other values into both slots after the forward and check nothing moved.
	got, err := func() ([]Tensor, error) {
		st, err := s.Stage(ctx, in)
		if err != nil {
			return nil, err
		}
		return s.Forward(ctx, st, nil)
	}()
	if err != nil {
		t.Fatal(err)
	}
	held := cloneTensors(got)
	other := cloneTensors(in)
	for i := range other[0].Data {
		other[0].Data[i] ^= 0x5a
	}
	for range 2 {
		st, err := s.Stage(ctx, other)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Forward(ctx, st, outs); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got[0].Data, held[0].Data) {
		t.Error("a staged forward's outputs changed when its slot was staged again")
	}
}

// TestStagingConcurrent is the early hand-off: a producer stages batch N+1 while a consumer runs batch N
// (two slots), plus free-for-all goroutines on a four-slot Staging; every result is checked. Run with
// -race.
func TestStagingConcurrent(t *testing.T) {
	fm := loadIndex(t).Models["multi"]
	m := fixtureModule(t, "multi", Options{})
	ctx := context.Background()
	type item struct {
		st   Staged
		want []Tensor
	}
	t.Run("pipeline", func(t *testing.T) {
		s := stagingFor(t, m, loadTensors(t, fm.Cases[0].Inputs), 2)
		queue := make(chan item, 1) // one staged batch waits while one runs: both slots in use
		errs := make(chan error, 2)
		go func() {
			defer close(queue)
			for k := range 60 {
				c := fm.Cases[k%16]
				st, err := s.Stage(ctx, loadTensors(t, c.Inputs))
				for errors.Is(err, ErrStagingFull) { // the consumer has not freed a slot yet
					st, err = s.Stage(ctx, loadTensors(t, c.Inputs))
				}
				if err != nil {
					errs <- err
					return
				}
				queue <- item{st, loadTensors(t, c.Outputs)}
			}
		}()
		go func() {
			var outs []Tensor
			var err error
			for it := range queue {
				if outs, err = s.Forward(ctx, it.st, outs); err == nil {
					err = compareOutputs(outs, it.want)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Staged != 60 || st.EagerForwards != 60 {
			t.Errorf("stats %+v, want 60 staged and forwarded", st)
		}
	})
	t.Run("free-for-all", func(t *testing.T) {
		s := stagingFor(t, m, loadTensors(t, fm.Cases[0].Inputs), 4)
		var wg sync.WaitGroup
		failed := make(chan error, 8)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var outs []Tensor
				for k := 0; k < 30; k++ {
					c := fm.Cases[(g*7+k)%16]
					st, err := s.Stage(ctx, loadTensors(t, c.Inputs))
					if errors.Is(err, ErrStagingFull) {
						continue
					}
					if err == nil {
						outs, err = s.Forward(ctx, st, outs)
					}
					if err == nil {
						err = compareOutputs(outs, loadTensors(t, c.Outputs))
					}
					if err != nil {
						failed <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(failed)
		for err := range failed {
			t.Error(err)
		}
	})
}

// TestStagingErrors: misuse is refused with a message that says what was wrong, and the Staging stays
// usable.
func TestStagingErrors(t *testing.T) {
	fm := loadIndex(t).Models["multi"]
	m := fixtureModule(t, "multi", Options{})
	in := loadTensors(t, fm.Cases[1].Inputs)
	ctx := context.Background()

	for _, c := range []struct {
		name string
		opts StagingOptions
		want string
	}{
		{"no inputs", StagingOptions{}, "0 inputs (want 1 to 4)"},
		{"one of two inputs", StagingOptions{Inputs: []StagingInput{{DType: Float32, MaxShape: []int64{4, 4}}}}, "wrong number of inputs: forward takes 2"},
		{"17 slots", StagingOptions{Slots: 17, Inputs: []StagingInput{{DType: Float32, MaxShape: []int64{4, 4}}, {DType: Int64, MaxShape: []int64{4, 3}}}}, "17 slots (want 1 to 16)"},
		{"float image", StagingOptions{Inputs: []StagingInput{{DType: Float32, MaxShape: []int64{4, 8, 8, 3}, Image: &ImageNormalize{Std: [3]float32{1, 1, 1}}}, {DType: Int64, MaxShape: []int64{4, 3}}}}, "an image input is uint8 [B,H,W,3]"},
		{"zero std", StagingOptions{Inputs: []StagingInput{{DType: Uint8, MaxShape: []int64{4, 8, 8, 3}, Image: &ImageNormalize{Std: [3]float32{1, 0, 1}}}, {DType: Int64, MaxShape: []int64{4, 3}}}}, "non-zero std"},
		{"empty max shape", StagingOptions{Inputs: []StagingInput{{DType: Float32}, {DType: Int64, MaxShape: []int64{4, 3}}}}, "max shape []"},
		{"zero dimension", StagingOptions{Inputs: []StagingInput{{DType: Float32, MaxShape: []int64{4, 0}}, {DType: Int64, MaxShape: []int64{4, 3}}}}, "has a dimension below 1"},
	} {
		if _, err := m.NewStaging(c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewStaging %s: %v, want an error containing %q", c.name, err, c.want)
		}
	}

	s := stagingFor(t, m, in, 1)
	short := cloneTensors(in)
	short[0].Data = short[0].Data[:4]
	big := []Tensor{{DType: Float32, Shape: []int64{17, 4}, Data: make([]byte, 17*16)}, {DType: Int64, Shape: []int64{17, 3}, Data: make([]byte, 17*24)}}
	wrong := cloneTensors(in)
	wrong[1].DType, wrong[1].Data = Int32, wrong[1].Data[:len(wrong[1].Data)/2]
	for _, c := range []struct {
		name   string
		inputs []Tensor
		want   string
	}{
		{"one input", in[:1], "1 inputs, the staging takes 2"},
		{"short data", short, "needs 32 bytes, got 4"},
		{"above capacity", big, "(x) is float32 [17,4]; the staging takes float32 up to [16,4]"},
		{"wrong dtype", wrong, "(ids) is int32 [2,3]; the staging takes int64 up to [16,3]"},
	} {
		if _, err := s.Stage(ctx, c.inputs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Stage %s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// A refused batch leaves the one slot free.
	st, err := s.Stage(ctx, in)
	if err != nil {
		t.Fatalf("stage after refusals: %v", err)
	}
	if _, err := s.Stage(ctx, in); !errors.Is(err, ErrStagingFull) {
		t.Errorf("second Stage into one slot: %v, want ErrStagingFull", err)
	}
	if _, err := s.Forward(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Forward(ctx, st, nil); !errors.Is(err, ErrNotStaged) {
		t.Errorf("second Forward of one batch: %v, want ErrNotStaged", err)
	}
	if err := st.Release(); !errors.Is(err, ErrNotStaged) {
		t.Errorf("Release after Forward: %v, want ErrNotStaged", err)
	}
	if err := (Staged{}).Release(); !errors.Is(err, ErrNotStaged) {
		t.Errorf("Release of a zero Staged: %v, want ErrNotStaged", err)
	}
	other := stagingFor(t, m, in, 1)
	st, _ = other.Stage(ctx, in)
	if _, err := s.Forward(ctx, st, nil); err == nil || !strings.Contains(err.Error(), "belongs to another Staging") {
		t.Errorf("Forward of another Staging's batch: %v", err)
	}
	if err := st.Release(); err != nil {
		t.Errorf("Release: %v", err)
	}
	// A cancelled context releases the batch; its slot is free again.
	st, _ = s.Stage(ctx, in)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Forward(cancelled, st, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Forward with a cancelled context: %v", err)
	}
	if _, err := s.Stage(cancelled, in); !errors.Is(err, context.Canceled) {
		t.Errorf("Stage with a cancelled context: %v", err)
	}
	st, err = s.Stage(ctx, in)
	if err != nil {
		t.Fatalf("the cancelled batch's slot was not freed: %v", err)
	}
	// Closing drops the staged batch; everything after says closed.
	s.Close()
	if _, err := s.Forward(ctx, st, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Forward after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Stage(ctx, in); !errors.Is(err, ErrClosed) {
		t.Errorf("Stage after Close: %v, want ErrClosed", err)
	}
	if err := s.CaptureGraph([]int64{1, 4}, []int64{1, 3}); !errors.Is(err, ErrClosed) {
		t.Errorf("CaptureGraph after Close: %v, want ErrClosed", err)
	}
	if s.Close() != nil || (s.Stats() != StagingStats{}) {
		t.Error("a second Close failed or a closed Staging reports counters")
	}
	// Closing the module closes its stagings.
	m2 := fixtureModule(t, "multi", Options{})
	s2, err := m2.NewStaging(StagingOptions{Inputs: []StagingInput{{DType: Float32, MaxShape: []int64{4, 4}}, {DType: Int64, MaxShape: []int64{4, 3}}}})
	if err != nil {
		t.Fatal(err)
	}
	st, _ = s2.Stage(ctx, in)
	m2.Close()
	if _, err := s2.Forward(ctx, st, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("staged Forward after Module.Close: %v, want ErrClosed", err)
	}
	if _, err := m2.NewStaging(StagingOptions{Inputs: []StagingInput{{DType: Float32, MaxShape: []int64{4, 4}}, {DType: Int64, MaxShape: []int64{4, 3}}}}); !errors.Is(err, ErrClosed) {
		t.Errorf("NewStaging on a closed module: %v, want ErrClosed", err)
	}
}

// TestCaptureGraph: on the CPU, capturing says CUDA graphs are not supported on cpu (wrapping
// ErrGraphUnavailable) and those shapes keep running eagerly, with the same results; on a GPU
// ($OFASERVE_TEST_DEVICE=cuda:N) a captured graph is replayed for exactly its shapes and agrees with the
// eager path. Bad shapes are a different error.
func TestCaptureGraph(t *testing.T) {
	fm := loadIndex(t).Models["multi"]
	m := fixtureModule(t, "multi", Options{})
	s := stagingFor(t, m, loadTensors(t, fm.Cases[0].Inputs), 2)
	ctx := context.Background()
	err := s.CaptureGraph([]int64{4, 4}, []int64{4, 3})
	captured := err == nil
	switch {
	case testDevice() == "cpu":
		if !errors.Is(err, ErrGraphUnavailable) || !strings.Contains(err.Error(), "not supported on cpu") {
			t.Fatalf("CaptureGraph on the CPU: %v, want ErrGraphUnavailable saying not supported on cpu", err)
		}
	case err != nil && !errors.Is(err, ErrGraphUnavailable):
		t.Fatalf("CaptureGraph on %s: %v", testDevice(), err)
	case err != nil:
		t.Logf("CaptureGraph on %s fell back to eager: %v", testDevice(), err)
	}
	for _, bad := range [][][]int64{
		{{17, 4}, {17, 3}},
		{{4, 4}},
		{{4, 4, 1}, {4, 3}},
	} {
		if err := s.CaptureGraph(bad...); err == nil || errors.Is(err, ErrGraphUnavailable) {
			t.Errorf("CaptureGraph%v: %v, want an invalid-argument error", bad, err)
		}
	}
	var replays int64
	for _, b := range []int{4, 3, 4, 16, 4} {
		c := fm.Cases[b-1]
		in := loadTensors(t, c.Inputs)
		eager, err := m.Forward(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.Stage(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Forward(ctx, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b == 4 && captured {
			replays++
		}
		if err := compareOutputsTol(got, eager, tolerance{abs: 1e-5}); err != nil {
			t.Errorf("batch %d: staged (graph %v) vs eager: %v", b, b == 4 && captured, err)
		}
	}
	st := s.Stats()
	if st.GraphReplays != replays || st.EagerForwards != 5-replays || (st.Graphs == 1) != captured {
		t.Errorf("stats %+v: want %d replays, %d eager forwards, graph captured %v", st, replays, 5-replays, captured)
	}
}
