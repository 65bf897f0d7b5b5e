package cache

import (
	"context"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
)

// BenchmarkHit is what a hit costs the model handle for a request the size
// of an OFA request (a 100 kB image and a sentence): the key's digest, the
// lookup and the copy of a small answer out. Compare the miss latency of
// test/ocrofa's BenchmarkResponseCache.
func BenchmarkHit(b *testing.B) {
	c, _ := New(1 << 20)
	req := &backend.Request{Inputs: []backend.Tensor{
		{Name: "IMAGE", Datatype: "BYTES", Shape: []int64{1}, Data: make([]byte, 100<<10)},
		{Name: "HYPOTHESIS", Datatype: "BYTES", Shape: []int64{1}, Data: []byte("\x1a\x00\x00\x00there are two birds here.")},
	}}
	resp := &backend.Response{Outputs: []backend.Tensor{
		{Name: "RESULT", Datatype: "BYTES", Shape: []int64{1, 1}, Data: make([]byte, 120)},
		{Name: "LABEL", Datatype: "BYTES", Shape: []int64{1, 1}, Data: []byte("\x0a\x00\x00\x00entailment")},
		{Name: "SCORES", Datatype: "FP32", Shape: []int64{1, 3}, Data: make([]byte, 12)},
	}}
	compute := func(context.Context) (*backend.Response, error) { return resp, nil }
	c.Do(context.Background(), KeyOf("ofa", 1, 1, req, 3), 1, compute)
	b.SetBytes(int64(len(req.Inputs[0].Data)))
	for b.Loop() {
		if _, out, _ := c.Do(context.Background(), KeyOf("ofa", 1, 1, req, 3), 1, compute); !out.Hit {
			b.Fatal("miss")
		}
	}
}
