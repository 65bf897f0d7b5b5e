package repository

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
)

// Each model version a load creates gets its own observer from Options.Observer, asked for once per load.
func TestObserverPerLoadedVersion(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "m", simpleConfig+`version_policy { all {} }`, "1", "2")
	l := &fakeLoader{}
	var asked []string
	r, err := New(Options{Root: root, Mode: ModeExplicit, Loaders: map[string]backend.Loader{"pytorch": l.load},
		Observer: func(name string, version int64) batcher.Observer {
			key := fmt.Sprintf("%s/%d", name, version)
			asked = append(asked, key)
			return func(context.Context, batcher.Times) { asked = append(asked, "observed "+key) }
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	for range 2 { // load, then reload: a fresh observer each time
		if err := r.Load(context.Background(), "m", nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(asked) != 4 || asked[0] != "m/1" || asked[1] != "m/2" || asked[2] != "m/1" || asked[3] != "m/2" {
		t.Fatalf("observers asked for %v, want m/1 m/2 twice", asked)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.loaded {
		if m.spec.Observer == nil {
			t.Fatalf("version %d loaded without its observer", m.spec.Version)
		}
		m.spec.Observer(context.Background(), batcher.Times{RequestEnd: time.Now()})
	}
	if last := asked[len(asked)-1]; last != "observed m/2" {
		t.Fatalf("the spec's observer is not the one Options.Observer returned: %v", asked)
	}
}
