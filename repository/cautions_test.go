package repository

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
)

// A max_queue_size below max_batch_size is valid but caps every batch at it: the load says so in the log.
func TestLoadWarnsOfQueueSizeBelowBatch(t *testing.T) {
	for _, tc := range []struct {
		name, queue string
		warned      bool
	}{
		{"below", "max_queue_size: 2", true},
		{"equal", "max_queue_size: 4", false},
		{"unbounded", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			cfg := strings.Replace(simpleConfig, "max_batch_size: 4", "max_batch_size: 4 dynamic_batching { default_queue_policy { "+tc.queue+" } }", 1)
			if !strings.Contains(cfg, "dynamic_batching") {
				t.Fatalf("the test's config has no max_batch_size 4 to extend: %s", simpleConfig)
			}
			writeModel(t, root, "m", cfg, "1")
			var logs bytes.Buffer
			l := &fakeLoader{}
			r, err := New(Options{Root: root, Mode: ModeExplicit, Loaders: map[string]backend.Loader{"pytorch": l.load},
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close(context.Background()) })
			if err := r.Load(context.Background(), "m", nil); err != nil {
				t.Fatal(err)
			}
			got := strings.Contains(logs.String(), "max_queue_size 2 is below max_batch_size 4")
			if got != tc.warned {
				t.Fatalf("warned %v, want %v; log:\n%s", got, tc.warned, logs.String())
			}
		})
	}
}
