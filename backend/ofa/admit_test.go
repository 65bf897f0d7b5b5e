package ofa

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/backend/workpool"
	"github.com/ofaserve/ofaserve/batcher"
	torch "github.com/ofaserve/ofaserve/libtorch"
	"github.com/ofaserve/ofaserve/repository"
)

// loadWithPool loads the exported model with config text pbtxt, preparing in pool.
func loadWithPool(t testing.TB, pbtxt string, pool *workpool.Pool) testModel {
	t.Helper()
	cfg, err := repository.ParseConfig("config.pbtxt", []byte(pbtxt))
	if err != nil {
		t.Fatal(err)
	}
	if err := repository.Normalize("config.pbtxt", "ofa_entailment", cfg, torch.DeviceCount()); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(testRepo, "ofa_entailment")
	sig := backend.SignatureOf("ofa_entailment", cfg)
	bm, err := Load(context.Background(), backend.LoadSpec{
		Name: "ofa_entailment", Version: 1, ModelDir: dir, VersionDir: filepath.Join(dir, "1"), Config: cfg, Signature: sig, Pool: pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	m := bm.(*Model)
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return testModel{m, sig}
}

// claimSize rewrites a baseline JPEG's frame header: a file of a few KB whose header says w×h.
func claimSize(t testing.TB, jpg []byte, w, h int) []byte {
	t.Helper()
	b := bytes.Clone(jpg)
	for p := 2; p+9 < len(b); {
		if b[p+1] == 0xC0 {
			b[p+5], b[p+6], b[p+7], b[p+8] = byte(h>>8), byte(h), byte(w>>8), byte(w)
			return b
		}
		p += 2 + (int(b[p+2])<<8 | int(b[p+3]))
	}
	t.Fatal("no SOF0 in the test JPEG")
	return nil
}

const withParam = `parameters { key: "metadata_file"`

func param(key, value string) string {
	return `parameters { key: "` + key + `" value: { string_value: "` + value + `" } }` + "\n" + withParam
}

// An image whose header exceeds the model's pixel budget, or a request whose images together exceed the
// request budget, is refused with a 400 that names the size and the budget, before any image is decoded.
func TestPixelBudgetRefusedFromHeader(t *testing.T) {
	photo := testImages(t)["photo.jpg"] // 50×130: 6,500 pixels
	huge := claimSize(t, photo, 8000, 8000)
	b64 := []byte(base64.StdEncoding.EncodeToString(huge))
	tests := []struct {
		name   string
		config []string // exportedConfig replacements
		images [][]byte
		want   []string // in the 400's message; nil: accepted
	}{
		{"8000x8000 header, default budget", nil, [][]byte{huge}, []string{"IMAGE[0]: image too large: 8000x8000 exceeds the limit of 12000000 pixels per image", "max_image_pixels", "JPEG header"}},
		{"8000x8000 header as base64", nil, [][]byte{b64}, []string{"8000x8000", "12000000"}},
		{"second image over", nil, [][]byte{photo, huge}, []string{"IMAGE[1]", "8000x8000"}},
		{"image budget from the config", []string{withParam, param("max_image_pixels", "6000")}, [][]byte{photo}, []string{"50x130", "6000 pixels per image"}},
		{"request total", []string{withParam, param("max_request_pixels", "10000")}, [][]byte{photo, photo}, []string{"2 images hold 13000 pixels", "10000 pixels per request", "max_request_pixels"}},
		{"within the request total", []string{withParam, param("max_request_pixels", "10000")}, [][]byte{photo}, nil},
		{"within the image budget", []string{withParam, param("max_image_pixels", "6500")}, [][]byte{photo}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustLoad(t, exportedConfig(t, tt.config...))
			hyps := make([]string, len(tt.images))
			for i := range hyps {
				hyps[i] = "a photo"
			}
			_, err := m.infer(context.Background(), request(tt.images, hyps, nil))
			decodes := m.decodes.Load()
			if tt.want == nil {
				if err != nil || decodes != int64(len(tt.images)) {
					t.Fatalf("refused (%v) or %d decodes; want accepted, %d decodes", err, decodes, len(tt.images))
				}
				return
			}
			if backend.CodeOf(err) != backend.CodeInvalidArg {
				t.Fatalf("err %v (code %v), want a 400", err, backend.CodeOf(err))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q does not name %q", err, w)
				}
			}
			if decodes != 0 {
				t.Fatalf("%d images decoded before the refusal", decodes)
			}
		})
	}
}

// With the model's queue full, a request is refused (503) before it is prepared; a request admitted and
// waiting for a preprocessing worker leaves at once when its caller does, freeing its queue slot.
func TestQueueFullRefusedBeforeDecode(t *testing.T) {
	pool := workpool.New(1)
	m := loadWithPool(t, exportedConfig(t, "dynamic_batching { max_queue_delay_microseconds: 2000 }",
		"dynamic_batching { max_queue_delay_microseconds: 2000 default_queue_policy { max_queue_size: 1 } }"), pool)
	photo := testImages(t)["photo.jpg"]
	req := func() *backend.Request { return request([][]byte{photo}, []string{"a photo"}, nil) }

	// Another model holds the only worker.
	hold, held := make(chan struct{}), make(chan struct{})
	go func() { _ = pool.Do(context.Background(), "other", func() { close(held); <-hold }) }()
	<-held

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := m.infer(ctx, req()); first <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for pool.Stats().Waiting != 1 { // admitted, waiting for the worker
		if time.Now().After(deadline) {
			t.Fatal("the first request never waited for a worker")
		}
		time.Sleep(100 * time.Microsecond)
	}
	huge := claimSize(t, photo, 4000, 2000) // 8 Mpx: within the budget, but it must not be decoded either
	for i := range 20 {
		_, err := m.infer(context.Background(), request([][]byte{huge}, []string{"a photo"}, nil))
		if backend.CodeOf(err) != backend.CodeUnavailable || !strings.Contains(err.Error(), "queue") {
			t.Fatalf("request %d with the queue full: %v (code %v), want 503 queue full", i, err, backend.CodeOf(err))
		}
	}
	cancel()
	select {
	case err := <-first:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the cancelled request: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a request cancelled while waiting for a worker did not return")
	}
	if d := m.decodes.Load(); d != 0 {
		t.Fatalf("%d images decoded; refused and cancelled requests must decode none", d)
	}
	close(hold)
	// The cancelled request's slot is free again.
	if _, err := m.infer(context.Background(), req()); err != nil {
		t.Fatalf("after the queue emptied: %v", err)
	}
	if d := m.decodes.Load(); d != 1 {
		t.Fatalf("%d decodes, want 1", d)
	}
	if st := m.Stats(); st.Failures[batcher.FailRejected] != 20 {
		t.Fatalf("stats count %d queue-full refusals, want 20", st.Failures[batcher.FailRejected])
	}
}
