package repository

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
)

// ensembleConfig is an ensemble over the given step models (each step
// reads x and writes y_<i>; only the shape of the config matters here).
func ensembleConfig(steps ...string) string {
	var b strings.Builder
	b.WriteString(`platform: "ensemble"
max_batch_size: 4
input [{ name: "x" data_type: TYPE_FP32 dims: [ 2 ] }]
output [{ name: "y" data_type: TYPE_FP32 dims: [ 3 ] }]
ensemble_scheduling { step [`)
	for i, s := range steps {
		if i > 0 {
			b.WriteString(",")
		}
		name, version, _ := strings.Cut(s, ":")
		if version == "" {
			version = "-1"
		}
		fmt.Fprintf(&b, `{ model_name: "%s" model_version: %s input_map { key: "x" value: "x" } output_map { key: "y" value: "y_%d" } }`, name, version, i)
	}
	b.WriteString("] }\n")
	return b.String()
}

// ensembleRecorder is an ensemble loader that records what it loaded and
// whether every step model was ready at that moment.
type ensembleRecorder struct {
	repo *Repository
	fake *fakeLoader

	mu      sync.Mutex
	order   []string
	notDone []string // "ensemble: step" whose step was not ready when the ensemble loaded
}

func (e *ensembleRecorder) load(ctx context.Context, spec backend.LoadSpec) (backend.Model, error) {
	e.mu.Lock()
	e.order = append(e.order, spec.Name)
	for _, ref := range dependencies(spec.Config) {
		if m, err := e.repo.Model(ref.name, ref.version); err != nil || !m.Ready() {
			e.notDone = append(e.notDone, spec.Name+": "+ref.name)
		}
	}
	e.mu.Unlock()
	return e.fake.load(ctx, spec)
}

func newEnsembleRepo(t *testing.T, root string, mode ControlMode, startup ...string) (*Repository, *ensembleRecorder) {
	t.Helper()
	l := &fakeLoader{}
	rec := &ensembleRecorder{fake: l}
	r, err := New(Options{Root: root, Mode: mode, StartupModels: startup,
		Loaders: map[string]backend.Loader{"pytorch": l.load, PlatformEnsemble: rec.load}})
	if err != nil {
		t.Fatal(err)
	}
	rec.repo = r
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r, rec
}

func reasonIn(r *Repository, name string) string {
	for _, e := range r.Index(false) {
		if e.Name == name {
			return e.State.String() + ": " + e.Reason
		}
	}
	return "not listed"
}

// TestEnsembleLoadsAfterItsSteps: whatever the names' order, step models
// load before the ensembles that run them, ensembles of ensembles included.
func TestEnsembleLoadsAfterItsSteps(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "a_outer", ensembleConfig("m_inner", "z_step"), "1")
	writeModel(t, root, "m_inner", ensembleConfig("z_step", "z_step:1"), "1")
	writeModel(t, root, "z_step", simpleConfig, "1")
	r, rec := newEnsembleRepo(t, root, ModeNone)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.order, []string{"m_inner", "a_outer"}) || len(rec.notDone) > 0 {
		t.Errorf("ensembles loaded in order %v, with steps not ready: %v; want [m_inner a_outer], none", rec.order, rec.notDone)
	}
	for _, n := range []string{"a_outer", "m_inner", "z_step"} {
		if !r.ready(n) {
			t.Errorf("%s: %s", n, reasonIn(r, n))
		}
	}
}

// TestEnsembleDependencyErrors: an ensemble whose step model is missing,
// failed, or lacks the named version is listed UNAVAILABLE with Triton's
// reason and never reaches its loader; so are ensembles in a circle.
func TestEnsembleDependencyErrors(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "good", simpleConfig, "1")
	writeModel(t, root, "bad", simpleConfig+"max_batch_size: -3\n", "1")
	writeModel(t, root, "e_missing", ensembleConfig("good", "ghost", "phantom"), "1")
	writeModel(t, root, "e_failed", ensembleConfig("bad"), "1")
	writeModel(t, root, "e_version", ensembleConfig("good:2"), "1")
	writeModel(t, root, "e_on_failed", ensembleConfig("e_failed"), "1")
	writeModel(t, root, "c1", ensembleConfig("c2"), "1")
	writeModel(t, root, "c2", ensembleConfig("c1", "good"), "1")
	r, rec := newEnsembleRepo(t, root, ModeNone)
	err := r.Start(context.Background())
	if err == nil {
		t.Fatal("Start succeeded")
	}
	badReason := reasonIn(r, "bad")
	for name, want := range map[string]string{
		"e_missing":   "UNAVAILABLE: ensemble e_missing contains models that are not available or ambiguous: ghost, phantom",
		"e_failed":    "UNAVAILABLE: ensemble 'e_failed' depends on 'bad' which has no loaded version. Model 'bad' loading failed with error: " + strings.TrimPrefix(badReason, "UNAVAILABLE: "),
		"e_version":   "UNAVAILABLE: ensemble 'e_version' depends on 'good' whose required version 2 is not loaded.",
		"e_on_failed": "UNAVAILABLE: ensemble 'e_on_failed' depends on 'e_failed' which has no loaded version. Model 'e_failed' loading failed with error: ensemble 'e_failed' depends on 'bad'",
		"c1":          "UNAVAILABLE: circular dependency between ensembles: c1 -> ... -> c2 -> c1",
		"c2":          "UNAVAILABLE: circular dependency between ensembles: c1 -> ... -> c2 -> c1",
	} {
		if got := reasonIn(r, name); !strings.HasPrefix(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
		if !strings.Contains(err.Error(), "failed to load '"+name+"'") {
			t.Errorf("Start's error does not name %s: %v", name, err)
		}
	}
	if !strings.Contains(badReason, "max_batch_size") {
		t.Errorf("bad: %s", badReason)
	}
	if len(rec.order) != 0 {
		t.Errorf("ensembles reached their loader: %v", rec.order)
	}
	if !r.ready("good") {
		t.Error("the good step model did not load")
	}
}

// TestExplicitLoadPullsSteps: in explicit mode, loading an ensemble (at
// start-up or by Load) loads its step models that are not ready; a step
// model already ready is not reloaded.
func TestExplicitLoadPullsSteps(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "s1", simpleConfig, "1")
	writeModel(t, root, "s2", simpleConfig, "1")
	writeModel(t, root, "ens", ensembleConfig("s1", "s2"), "1")
	writeModel(t, root, "ens_b", ensembleConfig("s1"), "1")
	r, rec := newEnsembleRepo(t, root, ModeExplicit, "ens")
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ens", "s1", "s2"} {
		if !r.ready(n) {
			t.Errorf("%s: %s", n, reasonIn(r, n))
		}
	}
	loads := len(rec.fake.loaded)
	if err := r.Load(context.Background(), "ens_b", nil); err != nil {
		t.Fatal(err)
	}
	if got := len(rec.fake.loaded) - loads; got != 1 {
		t.Errorf("Load(ens_b) loaded %d versions, want only ens_b's (s1 was ready)", got)
	}
	// Unloading a step model leaves the ensemble loaded (it answers
	// UNAVAILABLE per request: package ensemble); loading the ensemble
	// again brings the step back.
	if err := r.Unload(context.Background(), "s1"); err != nil {
		t.Fatal(err)
	}
	if !r.ready("ens") || r.ready("s1") {
		t.Errorf("after unloading s1: ens ready %v, s1 ready %v", r.ready("ens"), r.ready("s1"))
	}
	if err := r.Load(context.Background(), "ens", nil); err != nil || !r.ready("s1") {
		t.Errorf("Load(ens) = %v, s1 ready %v", err, r.ready("s1"))
	}
}

func TestNormalizeEnsemble(t *testing.T) {
	head := `name: "e" platform: "ensemble" input [{ name: "x" data_type: TYPE_FP32 dims: [2] }] output [{ name: "y" data_type: TYPE_FP32 dims: [2] }]
`
	steps := `ensemble_scheduling { step [{ model_name: "m" input_map { key: "a" value: "x" } output_map { key: "b" value: "y" } }] }`
	for _, c := range []struct{ cfg, want string }{
		{head + steps + ` backend: "pytorch"`, "f: field 'backend': Ensemble model 'e' must have platform type 'ensemble' and empty backend type"},
		{head, "f: field 'ensemble_scheduling': ensemble scheduling must be set for ensemble e whose platform is ensemble"},
		{head + steps + ` instance_group [{ count: 2 }]`, "f: field 'instance_group': instance group should not be specified for ensemble 'e'"},
		{`name: "e" platform: "pytorch_libtorch" input [{ name: "x" data_type: TYPE_FP32 dims: [2] }] output [{ name: "y" data_type: TYPE_FP32 dims: [2] }] ` + steps,
			"f: field 'ensemble_scheduling': ensemble scheduling cannot be set for model 'e' whose platform is not ensemble"},
	} {
		cfg, err := ParseConfig("f", []byte(c.cfg))
		if err != nil {
			t.Fatal(err)
		}
		if err := Normalize("f", "e", cfg, 0); err == nil || err.Error() != c.want {
			t.Errorf("Normalize = %v\nwant %s", err, c.want)
		}
	}
	cfg, err := ParseConfig("f", []byte(head+steps))
	if err != nil {
		t.Fatal(err)
	}
	if err := Normalize("f", "e", cfg, 1); err != nil {
		t.Fatal(err)
	}
	if len(cfg.InstanceGroup) != 0 || Kind(cfg) != PlatformEnsemble {
		t.Errorf("normalized ensemble: instance groups %v, kind %q; want none, ensemble", cfg.InstanceGroup, Kind(cfg))
	}
}
