package ofa

import (
	"context"
	"encoding/binary"
	"math"
	"strconv"
	"time"
	"unsafe"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
	torch "github.com/ofaserve/ofaserve/libtorch"
)

// executor runs the model's batches in the batcher's two steps (batcher.Executor): Stage stacks a batch
// into its run's buffers and starts its copy to the device while the instance may still compute the
// previous batch; Exec runs it, softmax, split.
type executor struct{ m *Model }

// Stage stages the batch of run r (images as uint8, ids right-padded, both padded to the batch's bucket
// when the instance has a graph for it; staging.go). The shim's slot holds a whole batch, so a batch that
// grew since its last Stage call (r.Staged > 0) is staged again whole.
func (e executor) Stage(ctx context.Context, r batcher.Run, batch []*prepared) error {
	m := e.m
	s := m.stagers[r.Instance]
	if err := m.stageBatch(ctx, s, &s.runs[r.Slot], batch); err != nil {
		return backend.Errorf(backend.CodeInternal, "PyTorch execute failure: staging the batch: %v", err)
	}
	return nil
}

// Exec runs the staged batch of run r: one forward, softmax, split.
func (e executor) Exec(ctx context.Context, r batcher.Run, batch []*prepared) ([]*result, batcher.Timing, error) {
	m := e.m
	var timing batcher.Timing
	// The batcher owns the prepared requests now: their image buffers go
	// back to the pool when the batch is done with.
	defer func() {
		for _, p := range batch {
			m.releaseImages(p)
		}
	}()
	s := m.stagers[r.Instance]
	run := &s.runs[r.Slot]
	timing.Input = run.took // staged before Exec: while the previous batch computed, or just now
	t1 := time.Now()
	logits, err := m.forward(ctx, s, run)
	t2 := time.Now()
	timing.Infer = t2.Sub(t1)
	if err != nil {
		return nil, timing, backend.Errorf(backend.CodeInternal, "PyTorch execute failure: %v", err)
	}
	results := m.results[r.Instance][:0]
	row := 0
	for _, p := range batch {
		results = append(results, m.split(p, logits[row*numLabels*4:(row+p.n)*numLabels*4]))
		row += p.n
	}
	m.results[r.Instance] = results
	timing.Output = time.Since(t2)
	return results, timing, nil
}

func describe(outs []torch.Tensor) string {
	if len(outs) == 0 {
		return ""
	}
	return " (the first is " + outs[0].DType.String() + " " + backend.FormatShape(outs[0].Shape) + ")"
}

// split builds one request's outputs from its rows of logits
// (little-endian float32, numLabels per row).
func (m *Model) split(p *prepared, logits []byte) *result {
	probs := make([][numLabels]float32, p.n)
	for i := range probs {
		var l [numLabels]float64
		for k := range l {
			l[k] = float64(math.Float32frombits(binary.LittleEndian.Uint32(logits[(i*numLabels+k)*4:])))
		}
		probs[i] = softmax(l)
	}
	res := &result{outputs: make([]backend.Tensor, 0, len(p.outputs))}
	for _, o := range p.outputs {
		spec := &m.outputs[o]
		t := backend.Tensor{Name: spec.name, Datatype: spec.datatype}
		switch spec.kind {
		case outScores:
			t.Shape = []int64{int64(p.n), numLabels}
			t.Data = make([]byte, 0, p.n*numLabels*4)
			for _, row := range probs {
				for _, v := range row {
					t.Data = binary.LittleEndian.AppendUint32(t.Data, math.Float32bits(v))
				}
			}
		case outLabel:
			t.Shape = []int64{int64(p.n), 1}
			for _, row := range probs {
				l := m.labels[argmax(row)]
				t.Data = binary.LittleEndian.AppendUint32(t.Data, uint32(len(l)))
				t.Data = append(t.Data, l...)
			}
		case outResult:
			t.Shape = []int64{int64(p.n), 1}
			for _, row := range probs {
				at := len(t.Data)
				t.Data = append(t.Data, 0, 0, 0, 0)
				t.Data = m.appendResult(t.Data, row)
				binary.LittleEndian.PutUint32(t.Data[at:], uint32(len(t.Data)-at-4))
			}
		}
		res.outputs = append(res.outputs, t)
	}
	return res
}

// appendResult appends the RESULT JSON of one image:
// {"label":L,"confidence":p,"all_scores":{"entailment":p,...}}.
func (m *Model) appendResult(b []byte, probs [numLabels]float32) []byte {
	best := argmax(probs)
	b = append(b, `{"label":`...)
	b = append(b, m.labelsJS[best]...)
	b = append(b, `,"confidence":`...)
	b = appendNumber(b, probs[best])
	b = append(b, `,"all_scores":{`...)
	for k, v := range probs {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, m.labelsJS[k]...)
		b = append(b, ':')
		b = appendNumber(b, v)
	}
	return append(b, "}}"...)
}

// appendNumber writes v as a JSON number (null when not finite): the
// shortest decimal that reads back as the same float32.
func appendNumber(b []byte, v float32) []byte {
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, float64(v), 'g', -1, 32)
}

// softmax over the logits in float64, rounded to float32.
func softmax(l [numLabels]float64) [numLabels]float32 {
	mx := l[0]
	for _, v := range l[1:] {
		mx = max(mx, v)
	}
	var e [numLabels]float64
	sum := 0.0
	for k, v := range l {
		e[k] = math.Exp(v - mx)
		sum += e[k]
	}
	var p [numLabels]float32
	for k := range e {
		p[k] = float32(e[k] / sum)
	}
	return p
}

// argmax returns the first index of the largest value (NaNs never win).
func argmax(p [numLabels]float32) int {
	best := 0
	for k, v := range p {
		if v > p[best] || (p[best] != p[best] && v == v) {
			best = k
		}
	}
	return best
}

// grow returns buf resized to n, reallocating only when too small.
func grow[T any](buf []T, n int) []T {
	if cap(buf) < n {
		return make([]T, n)
	}
	return buf[:n]
}

// asBytes views an int64 slice as its little-endian bytes (the
// platforms libtorch runs on here are little-endian).
func asBytes[T int64](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0])))
}
