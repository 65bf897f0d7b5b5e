package repository

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// fakeModel answers every request with its own version in the response
// parameters and counts Infer and Close calls.
type fakeModel struct {
	spec   backend.LoadSpec
	closed atomic.Int32
	infers atomic.Int32
}

func (f *fakeModel) Infer(ctx context.Context, req *backend.Request) (*backend.Response, error) {
	f.infers.Add(1)
	return &backend.Response{Parameters: map[string]any{"version": f.spec.Version}}, nil
}

// validRequest fits simpleConfig's signature: x FP32 [1,2].
func validRequest() *backend.Request {
	return &backend.Request{Inputs: []backend.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Data: make([]byte, 8)}}}
}
func (f *fakeModel) Close(ctx context.Context) error { f.closed.Add(1); return nil }
func (f *fakeModel) Stats() batcher.Stats {
	return batcher.Stats{InferenceCount: uint64(f.spec.Version)}
}

type fakeLoader struct {
	mu     sync.Mutex
	loaded []*fakeModel
	fail   map[int64]error // versions that fail to load
}

func (l *fakeLoader) load(ctx context.Context, spec backend.LoadSpec) (backend.Model, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.fail[spec.Version]; err != nil {
		return nil, err
	}
	m := &fakeModel{spec: spec}
	l.loaded = append(l.loaded, m)
	return m, nil
}

const simpleConfig = `platform: "pytorch_libtorch"
max_batch_size: 4
input [{ name: "x" data_type: TYPE_FP32 dims: [ 2 ] }]
output [{ name: "y" data_type: TYPE_FP32 dims: [ 3 ] label_filename: "labels.txt" }]
`

// writeModel creates root/name with a config and the given version folders.
func writeModel(t *testing.T, root, name, config string, versions ...string) {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "labels.txt"), []byte("a\nb\nc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, v := range versions {
		if err := os.MkdirAll(filepath.Join(dir, v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func newRepo(t *testing.T, root string, mode ControlMode, l *fakeLoader, startup ...string) *Repository {
	t.Helper()
	r, err := New(Options{Root: root, Mode: mode, StartupModels: startup,
		Loaders: map[string]backend.Loader{"pytorch": l.load}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func codeIs(t *testing.T, err error, code backend.Code, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v %q", code, msg)
	}
	if backend.CodeOf(err) != code || !strings.Contains(err.Error(), msg) {
		t.Fatalf("got %v %q, want %v containing %q", backend.CodeOf(err), err, code, msg)
	}
}

func TestVersionPolicies(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "latest", simpleConfig, "1", "3", "2", "010", "x")
	writeModel(t, root, "latest2", simpleConfig+`version_policy { latest { num_versions: 2 } }`, "1", "2", "3")
	writeModel(t, root, "all", simpleConfig+`version_policy { all {} }`, "1", "2", "3")
	writeModel(t, root, "specific", simpleConfig+`version_policy { specific { versions: [1, 3] } }`, "1", "2", "3")
	l := &fakeLoader{}
	r := newRepo(t, root, ModeNone, l)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string][]int64{"latest": {3}, "latest2": {2, 3}, "all": {1, 2, 3}, "specific": {1, 3}}
	for name, versions := range want {
		var got []int64
		for _, e := range r.Index(true) {
			if e.Name == name {
				got = append(got, e.Version)
			}
		}
		if len(got) != len(versions) {
			t.Errorf("%s: ready versions %v, want %v", name, got, versions)
			continue
		}
		for i := range got {
			if got[i] != versions[i] {
				t.Errorf("%s: ready versions %v, want %v", name, got, versions)
			}
		}
	}
	m, err := r.Model("latest2", 0)
	if err != nil || m.Version() != 3 {
		t.Fatalf("latest of latest2 = %v, %v", m, err)
	}
	if !r.Ready() {
		t.Error("repository not ready after a clean start")
	}
}

func TestModelLookupAndHandle(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "m", simpleConfig+`version_policy { specific { versions: [1, 2, 5] } }`, "1", "2")
	l := &fakeLoader{fail: map[int64]error{2: errors.New("boom")}}
	r := newRepo(t, root, ModeNone, l)
	err := r.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "version 2 is at UNAVAILABLE state: boom") || !strings.Contains(err.Error(), "version 5") {
		t.Fatalf("Start error = %v", err)
	}

	_, err = r.Model("nope", 0)
	codeIs(t, err, backend.CodeNotFound, "Request for unknown model: 'nope' is not found")
	_, err = r.Model("m", 7)
	codeIs(t, err, backend.CodeNotFound, "Request for unknown model: 'm' version 7 is not found")
	_, err = r.Model("m", 2)
	codeIs(t, err, backend.CodeUnavailable, "Request for unknown model: 'm' version 2 is not at ready state")

	m, err := r.Model("m", 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name() != "m" || m.Version() != 1 || m.Signature().MaxBatchSize != 4 || m.Platform() != "pytorch_libtorch" || !m.Ready() {
		t.Errorf("handle = %s v%d mbs %d platform %s", m.Name(), m.Version(), m.Signature().MaxBatchSize, m.Platform())
	}
	if in := m.Signature().Inputs; len(in) != 1 || in[0].Name != "x" || in[0].Datatype != "FP32" || in[0].Dims[0] != 2 {
		t.Errorf("inputs = %+v", in)
	}
	if out := m.Signature().Outputs; len(out) != 1 || strings.Join(out[0].Labels, ",") != "a,b,c" {
		t.Errorf("outputs = %+v", out)
	}
	resp, err := m.Infer(context.Background(), validRequest())
	if err != nil || resp.Parameters["version"] != int64(1) {
		t.Errorf("Infer = %v, %v", resp, err)
	}
	// The handle validates every request before the kind sees it.
	for _, bad := range []*backend.Request{{}, {Inputs: []backend.Tensor{{Name: "x", Datatype: "FP64", Shape: []int64{1, 2}, Data: make([]byte, 16)}}}} {
		if _, err := m.Infer(context.Background(), bad); backend.CodeOf(err) != backend.CodeInvalidArg {
			t.Errorf("invalid request %+v: %v, want INVALID_ARG", bad, err)
		}
	}
	if n := m.impl.(*fakeModel).infers.Load(); n != 1 {
		t.Errorf("the kind saw %d requests, want only the valid one", n)
	}
	if m.Stats().InferenceCount != 1 {
		t.Errorf("Stats not passed through")
	}

	idx := r.Index(false)
	if len(idx) != 3 || idx[0].State != StateReady || idx[1].State != StateUnavailable || idx[1].Reason != "boom" ||
		idx[2].Version != 5 || !strings.Contains(idx[2].Reason, "not found") {
		t.Errorf("index = %+v", idx)
	}
	if !r.Ready() {
		t.Error("m has a ready version; the repository should be ready")
	}
}

func TestExplicitLoadUnload(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "a", simpleConfig, "1")
	writeModel(t, root, "b", simpleConfig, "1")
	writeModel(t, root, "broken", `platform: "pytorch_libtorch" bogus: 1`, "1")
	l := &fakeLoader{}
	r := newRepo(t, root, ModeExplicit, l, "a")
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Model("b", 0); backend.CodeOf(err) != backend.CodeNotFound {
		t.Fatalf("b should not be loaded: %v", err)
	}
	idx := r.Index(false)
	if len(idx) != 3 || idx[1].Name != "b" || idx[1].Version != 0 || idx[1].State != StateUnknown {
		t.Fatalf("index = %+v", idx)
	}
	ctx := context.Background()
	if err := r.Load(ctx, "b", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Model("b", 1); err != nil {
		t.Fatal(err)
	}
	err := r.Load(ctx, "broken", nil)
	codeIs(t, err, backend.CodeInvalidArg, "failed to load 'broken'")
	if !strings.Contains(err.Error(), "config.pbtxt") || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("load error does not name file and field: %v", err)
	}
	codeIs(t, r.Load(ctx, "missing", nil), backend.CodeInvalidArg, "no model folder 'missing'")
	codeIs(t, r.Load(ctx, "../etc", nil), backend.CodeInvalidArg, "invalid model name")

	// Reload swaps versions: the old instance is closed after the new one loads.
	first := l.loaded[len(l.loaded)-1]
	if err := r.Load(ctx, "b", nil); err != nil {
		t.Fatal(err)
	}
	if first.closed.Load() != 1 {
		t.Errorf("replaced version closed %d times", first.closed.Load())
	}
	m, _ := r.Model("b", 1)
	if err := r.Unload(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	_, err = r.Model("b", 1)
	codeIs(t, err, backend.CodeUnavailable, "is not at ready state")
	_, err = r.Model("b", 0)
	codeIs(t, err, backend.CodeNotFound, "has no available versions")
	_, err = m.Infer(ctx, validRequest())
	codeIs(t, err, backend.CodeUnavailable, "not at ready state")
	for _, e := range r.Index(false) {
		if e.Name == "b" && (e.State != StateUnavailable || e.Reason != "unloaded") {
			t.Errorf("b after unload: %+v", e)
		}
	}
	if err := r.Unload(ctx, "never-loaded"); err != nil {
		t.Errorf("unloading an unloaded model: %v", err)
	}

	// Loading with a config override (the load API's "config" parameter).
	over, err := modelconfig.FromJSON([]byte(`{"platform":"pytorch_libtorch","max_batch_size":2,"input":[{"name":"x","data_type":"TYPE_INT64","dims":[1]}],"output":[{"name":"y","data_type":"TYPE_FP32","dims":[1]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Load(ctx, "b", over); err != nil {
		t.Fatal(err)
	}
	if m, _ := r.Model("b", 0); m == nil || m.Signature().MaxBatchSize != 2 || m.Signature().Inputs[0].Datatype != "INT64" {
		t.Errorf("override not applied")
	}
}

func TestLoadUnloadRefusedWithoutExplicitControl(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "a", simpleConfig, "1")
	for _, mode := range []ControlMode{ModeNone, ModePoll} {
		r := newRepo(t, root, mode, &fakeLoader{})
		want := "model control mode is '" + mode.String() + "'"
		codeIs(t, r.Load(context.Background(), "a", nil), backend.CodeInvalidArg, want)
		codeIs(t, r.Unload(context.Background(), "a"), backend.CodeInvalidArg, want)
	}
}

func TestPollPicksUpChanges(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "a", simpleConfig, "1")
	l := &fakeLoader{}
	r := newRepo(t, root, ModeNone, l) // Poll is driven by hand; the mode only gates the ticker
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r.Poll(ctx) // nothing changed: nothing reloads
	if len(l.loaded) != 1 {
		t.Fatalf("unchanged repository reloaded: %d loads", len(l.loaded))
	}
	writeModel(t, root, "b", simpleConfig, "1")
	writeModel(t, root, "a", simpleConfig, "1", "2") // new version folder
	r.Poll(ctx)
	if m, err := r.Model("a", 0); err != nil || m.Version() != 2 {
		t.Fatalf("a after poll: %v %v", m, err)
	}
	if _, err := r.Model("b", 1); err != nil {
		t.Fatalf("b after poll: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(root, "b")); err != nil {
		t.Fatal(err)
	}
	r.Poll(ctx)
	_, err := r.Model("b", 0)
	codeIs(t, err, backend.CodeNotFound, "is not found")
	// A config that breaks keeps the served version and reports the error.
	if err := os.WriteFile(filepath.Join(root, "a", ConfigFile), []byte(simpleConfig+"max_batch_size: -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Poll(ctx)
	if m, err := r.Model("a", 0); err != nil || m.Version() != 2 {
		t.Fatalf("a after a broken config: %v %v", m, err)
	}
}

func TestCloseUnloadsEverything(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "a", simpleConfig+`version_policy { all {} }`, "1", "2")
	l := &fakeLoader{}
	r := newRepo(t, root, ModePoll, l)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, m := range l.loaded {
		if m.closed.Load() != 1 {
			t.Errorf("version %d closed %d times", m.spec.Version, m.closed.Load())
		}
	}
	if r.Ready() {
		t.Error("closed repository reports ready")
	}
}

func TestUnknownKindNamesFileAndField(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "o", `backend: "ofa" input [{name: "x" data_type: TYPE_STRING dims: [1]}] output [{name: "y" data_type: TYPE_STRING dims: [1]}]`, "1")
	r := newRepo(t, root, ModeNone, &fakeLoader{})
	err := r.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), filepath.Join("o", ConfigFile)) || !strings.Contains(err.Error(), "field 'backend'") ||
		!strings.Contains(err.Error(), "unsupported model kind 'ofa'") {
		t.Fatalf("got %v", err)
	}
	idx := r.Index(false)
	if len(idx) != 1 || idx[0].State != StateUnavailable || !strings.Contains(idx[0].Reason, "unsupported model kind") {
		t.Fatalf("index = %+v", idx)
	}
}
