package ensemble

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/backend"
)

// dagConfig fans out and in, over four steps of "simple" models:
//
//	X,Y ─▶ s0 ─S,D─▶ s1 ─TWO_X,TWO_Y
//	        └──S───▶ s2 ─TWO_S
//	TWO_X, TWO_S ─▶ s3 ─SUM,DIFF
//
// so SUM = 4x+2y, DIFF = -2y and TWO_Y = 2y.
const dagConfig = `name: "ens" platform: "ensemble" max_batch_size: 8
input [{ name: "X" data_type: TYPE_FP32 dims: [4] }, { name: "Y" data_type: TYPE_FP32 dims: [4] }]
output [{ name: "SUM" data_type: TYPE_FP32 dims: [4] }, { name: "DIFF" data_type: TYPE_FP32 dims: [4] }, { name: "TWO_Y" data_type: TYPE_FP32 dims: [4] }]
ensemble_scheduling { step [
  { model_name: "s0" model_version: -1 input_map { key: "INPUT0" value: "X" } input_map { key: "INPUT1" value: "Y" }
    output_map { key: "OUTPUT0" value: "S" } output_map { key: "OUTPUT1" value: "D" } },
  { model_name: "s1" model_version: -1 input_map { key: "INPUT0" value: "S" } input_map { key: "INPUT1" value: "D" }
    output_map { key: "OUTPUT0" value: "TWO_X" } output_map { key: "OUTPUT1" value: "TWO_Y" } },
  { model_name: "s2" model_version: -1 input_map { key: "INPUT0" value: "S" } input_map { key: "INPUT1" value: "S" }
    output_map { key: "OUTPUT0" value: "TWO_S" } },
  { model_name: "s3" model_version: -1 input_map { key: "INPUT0" value: "TWO_X" } input_map { key: "INPUT1" value: "TWO_S" }
    output_map { key: "OUTPUT0" value: "SUM" } output_map { key: "OUTPUT1" value: "DIFF" } }
] }`

func dagModels() fakeModels {
	return fakeModels{"s0": newAddSub("s0", 8), "s1": newAddSub("s1", 8), "s2": newAddSub("s2", 8), "s3": newAddSub("s3", 8)}
}

func dagRequest(outputs ...string) *backend.Request {
	return &backend.Request{ID: "r1", Outputs: outputs, Inputs: []backend.Tensor{
		f32("X", []int64{2, 4}, 1, 2, 3, 4, 5, 6, 7, 8),
		f32("Y", []int64{2, 4}, 10, 20, 30, 40, 50, 60, 70, 80),
	}}
}

func TestFanOutFanIn(t *testing.T) {
	models := dagModels()
	m := mustLoad(t, dagConfig, models)
	sig := backend.SignatureOf("ens", parseConfig(t, "ens", dagConfig))
	for _, c := range []struct {
		outputs []string
		want    map[string][]float32
	}{
		{nil, map[string][]float32{
			"SUM":   {24, 48, 72, 96, 120, 144, 168, 192},
			"DIFF":  {-20, -40, -60, -80, -100, -120, -140, -160},
			"TWO_Y": {20, 40, 60, 80, 100, 120, 140, 160},
		}},
		{[]string{"TWO_Y", "SUM"}, map[string][]float32{
			"SUM":   {24, 48, 72, 96, 120, 144, 168, 192},
			"TWO_Y": {20, 40, 60, 80, 100, 120, 140, 160},
		}},
	} {
		resp, err := infer(context.Background(), m, sig, dagRequest(c.outputs...))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, o := range resp.Outputs {
			names = append(names, o.Name)
			if !slices.Equal(o.Shape, []int64{2, 4}) || o.Datatype != "FP32" {
				t.Errorf("%s: %s %v, want FP32 [2,4]", o.Name, o.Datatype, o.Shape)
			}
			if got := floats(o); !slices.Equal(got, c.want[o.Name]) {
				t.Errorf("%s = %v, want %v", o.Name, got, c.want[o.Name])
			}
		}
		// Outputs come in config order, only those asked for.
		want := []string{"SUM", "DIFF", "TWO_Y"}
		if c.outputs != nil {
			want = []string{"SUM", "TWO_Y"}
		}
		if !slices.Equal(names, want) {
			t.Errorf("outputs %v, want %v", names, want)
		}
	}
	for name, s := range models {
		if s.Calls() != 2 {
			t.Errorf("step model %s ran %d times for 2 requests", name, s.Calls())
		}
	}
	st := m.Stats()
	if st.Success.Count != 2 || st.ExecutionCount != 2 || st.InferenceCount != 4 || st.Batches[2].Executions != 2 || st.Fail.Count != 0 {
		t.Errorf("ensemble stats: success %d, executions %d, inferences %d, batch-2 executions %d, failures %d; want 2, 2, 4, 2, 0",
			st.Success.Count, st.ExecutionCount, st.InferenceCount, st.Batches[2].Executions, st.Fail.Count)
	}
	if st.ComputeInfer.Total <= 0 || st.ComputeInfer.Count != 2 {
		t.Errorf("ensemble compute_infer %+v: want the steps' time, counted per request", st.ComputeInfer)
	}
}

// TestReadyStepsRunTogether: s1 and s2 both wait for s0 only, so they must
// run at the same time; each blocks until the other has started.
func TestReadyStepsRunTogether(t *testing.T) {
	models := dagModels()
	var started sync.WaitGroup
	started.Add(2)
	for _, name := range []string{"s1", "s2"} {
		models[name].fn = func(ctx context.Context, req *backend.Request) (*backend.Response, error) {
			started.Done()
			ok := make(chan struct{})
			go func() { started.Wait(); close(ok) }()
			select {
			case <-ok:
				return addSub(req), nil
			case <-time.After(10 * time.Second):
				return nil, errors.New("the other ready step never started")
			}
		}
	}
	m := mustLoad(t, dagConfig, models)
	if _, err := m.Infer(context.Background(), dagRequest()); err != nil {
		t.Fatal(err)
	}
}

// TestFailingStep: the step model's error and code reach the client with
// the ensemble and the step named; the sibling step is cancelled; the
// steps after it never run.
func TestFailingStep(t *testing.T) {
	models := dagModels()
	models["s1"].fn = func(context.Context, *backend.Request) (*backend.Response, error) {
		return nil, backend.Errorf(backend.CodeInvalidArg, "input 'INPUT1' holds a value the model refuses")
	}
	siblingCancelled := make(chan error, 1)
	models["s2"].fn = func(ctx context.Context, req *backend.Request) (*backend.Response, error) {
		select {
		case <-ctx.Done():
			siblingCancelled <- ctx.Err()
			return nil, backend.SubmitError(ctx.Err())
		case <-time.After(10 * time.Second):
			siblingCancelled <- nil
			return addSub(req), nil
		}
	}
	m := mustLoad(t, dagConfig, models)
	_, err := m.Infer(context.Background(), dagRequest())
	want := "in ensemble 'ens', step 1 (model 's1'): input 'INPUT1' holds a value the model refuses"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	if backend.CodeOf(err) != backend.CodeInvalidArg {
		t.Errorf("code %v, want the step's INVALID_ARG", backend.CodeOf(err))
	}
	if got := <-siblingCancelled; !errors.Is(got, context.Canceled) {
		t.Errorf("the running sibling step saw %v, want its request cancelled", got)
	}
	if n := models["s3"].Calls(); n != 0 {
		t.Errorf("the step after the failure ran %d times", n)
	}
	st := m.Stats()
	if st.Fail.Count != 1 || st.Failures["OTHER"] != 1 || st.Success.Count != 0 {
		t.Errorf("stats: fail %d (OTHER %d), success %d; want 1 (1), 0", st.Fail.Count, st.Failures["OTHER"], st.Success.Count)
	}
}

// TestStepValidationError: a step request the step model refuses (here a
// shape its signature does not allow) fails with the step model's own
// validation message.
func TestStepValidationError(t *testing.T) {
	models := dagModels()
	m := mustLoad(t, dagConfig, models)
	models["s3"].sig.Inputs[1].Datatype = "INT32" // changed behind the ensemble's back (a reload)
	_, err := m.Infer(context.Background(), dagRequest())
	want := "in ensemble 'ens', step 3 (model 's3'): inference input 'INPUT1' data-type is 'FP32', but model 's3' expects 'INT32'"
	if err == nil || err.Error() != want || backend.CodeOf(err) != backend.CodeInvalidArg {
		t.Fatalf("error %v (%v), want %q (INVALID_ARG)", err, backend.CodeOf(err), want)
	}
}

// TestCancelledRequest: cancelling the ensemble request cancels the step
// that is running and the request answers CANCELLED at once; a step model
// queued in a batcher drops the step request from its queue.
func TestCancelledRequest(t *testing.T) {
	models := dagModels()
	models["s1"] = newBatchedAddSub(t, "s1", time.Hour) // a batch never fills: the request waits in the queue
	m := mustLoad(t, dagConfig, models)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := m.Infer(ctx, dagRequest()); errc <- err }()
	deadline := time.Now().Add(10 * time.Second)
	for models["s1"].batch.Stats().Pending == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the step request never reached s1's queue")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		if err == nil || err.Error() != "in ensemble 'ens': request cancelled" || backend.CodeOf(err) != backend.CodeCancelled {
			t.Fatalf("error %v (%v), want CANCELLED \"in ensemble 'ens': request cancelled\"", err, backend.CodeOf(err))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled request did not return")
	}
	st := models["s1"].batch.Stats()
	if st.Pending != 0 || st.Failures["CANCELED"] != 1 {
		t.Errorf("s1: pending %d, CANCELED %d; want 0, 1", st.Pending, st.Failures["CANCELED"])
	}
	if models["s3"].Calls() != 0 {
		t.Error("a step after the cancelled one ran")
	}
}

// TestBatchingAcrossEnsembleAndDirect: 32 concurrent ensemble requests and
// 8 direct requests to the same step model share the step model's batches.
func TestBatchingAcrossEnsembleAndDirect(t *testing.T) {
	a := newBatchedAddSub(t, "a", 50*time.Millisecond)
	b := newBatchedAddSub(t, "b", 50*time.Millisecond)
	m := mustLoad(t, ensembleIO+`ensemble_scheduling { step [
	  { model_name: "a" model_version: -1 input_map { key: "INPUT0" value: "X" } input_map { key: "INPUT1" value: "Y" }
	    output_map { key: "OUTPUT0" value: "S" } output_map { key: "OUTPUT1" value: "D" } },
	  { model_name: "b" model_version: -1 input_map { key: "INPUT0" value: "S" } input_map { key: "INPUT1" value: "D" }
	    output_map { key: "OUTPUT0" value: "OUT" } }] }`, fakeModels{"a": a, "b": b})
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			x := float32(i)
			req := &backend.Request{Inputs: []backend.Tensor{f32("X", []int64{1, 4}, x, x, x, x), f32("Y", []int64{1, 4}, 1, 2, 3, 4)}}
			if i < 32 {
				resp, err := m.Infer(context.Background(), req)
				if err == nil && !slices.Equal(floats(resp.Outputs[0]), []float32{2 * x, 2 * x, 2 * x, 2 * x}) {
					err = errors.New("wrong ensemble answer")
				}
				errs <- err
				return
			}
			req.Inputs[0].Name, req.Inputs[1].Name = "INPUT0", "INPUT1"
			_, err := a.Infer(context.Background(), req)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for name, s := range map[string]*fakeStep{"a": a, "b": b} {
		st := s.batch.Stats()
		want := uint64(32)
		if name == "a" {
			want = 40
		}
		if st.Success.Count != want || st.ExecutionCount >= st.Success.Count {
			t.Errorf("step model %s: %d requests in %d executions; want %d requests in fewer executions", name, st.Success.Count, st.ExecutionCount, want)
		}
	}
}

// TestStepModelGone: a step model unloaded after the ensemble loaded makes
// the ensemble's requests fail UNAVAILABLE, naming ensemble and step.
func TestStepModelGone(t *testing.T) {
	models := dagModels()
	m := mustLoad(t, dagConfig, models)
	delete(models, "s2")
	_, err := m.Infer(context.Background(), dagRequest())
	want := "in ensemble 'ens', step 2 (model 's2'): Request for unknown model: 's2' is not found"
	if err == nil || err.Error() != want || backend.CodeOf(err) != backend.CodeUnavailable {
		t.Fatalf("error %v (%v), want %q (UNAVAILABLE)", err, backend.CodeOf(err), want)
	}
}

// TestOptionalInputAndReshape: an optional ensemble input the request
// leaves out is not passed on, and a non-batching step model's output gets
// a batch dimension for the batching step that reads it.
func TestOptionalInputAndReshape(t *testing.T) {
	first := newAddSub("first", 0)
	first.sig.Inputs[1].Optional = true
	first.fn = func(_ context.Context, req *backend.Request) (*backend.Response, error) {
		if len(req.Inputs) != 1 || !slices.Equal(req.Inputs[0].Shape, []int64{4}) {
			return nil, errors.New("first got the wrong inputs")
		}
		return &backend.Response{Outputs: []backend.Tensor{f32("OUTPUT0", []int64{4}, floats(req.Inputs[0])...)}}, nil
	}
	second := newAddSub("second", 8)
	m := mustLoad(t, `name: "ens" platform: "ensemble"
input [{ name: "X" data_type: TYPE_FP32 dims: [4] }, { name: "Y" data_type: TYPE_FP32 dims: [4] optional: true }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [4] }]
ensemble_scheduling { step [
  { model_name: "first" input_map { key: "INPUT0" value: "X" } input_map { key: "INPUT1" value: "Y" } output_map { key: "OUTPUT0" value: "T" } },
  { model_name: "second" input_map { key: "INPUT0" value: "T" } input_map { key: "INPUT1" value: "X" } output_map { key: "OUTPUT0" value: "OUT" } }] }`,
		fakeModels{"first": first, "second": second})
	resp, err := m.Infer(context.Background(), &backend.Request{Inputs: []backend.Tensor{f32("X", []int64{4}, 1, 2, 3, 4)}})
	if err != nil {
		t.Fatal(err)
	}
	out := resp.Outputs[0]
	// second batches: [4] became [1,4] on the way in; the ensemble does not
	// batch, so its output loses the batch dimension again.
	if !slices.Equal(out.Shape, []int64{4}) || !slices.Equal(floats(out), []float32{2, 4, 6, 8}) {
		t.Errorf("OUT %v %v, want [4] [2 4 6 8]", out.Shape, floats(out))
	}
}

func TestCloseWaitsAndRefuses(t *testing.T) {
	models := dagModels()
	release := make(chan struct{})
	models["s0"].fn = func(_ context.Context, req *backend.Request) (*backend.Response, error) {
		<-release
		return addSub(req), nil
	}
	m, err := load(t, dagConfig, models)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := m.Infer(context.Background(), dagRequest()); errc <- err }()
	for models["s0"].Calls() == 0 {
		time.Sleep(time.Millisecond)
	}
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := m.Close(short); err == nil {
		t.Error("Close returned while a request was running")
	}
	if _, err := m.Infer(context.Background(), dagRequest()); backend.CodeOf(err) != backend.CodeUnavailable {
		t.Errorf("a request after Close: %v, want UNAVAILABLE", err)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Errorf("the running request: %v", err)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Error(err)
	}
}
