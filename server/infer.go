package server

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
)

// outputReq is one output a client asked for and how it wants it back.
type outputReq struct {
	name       string
	binary     bool  // HTTP: send in the binary extension
	classCount int64 // > 0: classification top-K
}

// runInfer runs req (the model validates it: backend.Signature.Validate)
// and returns the outputs to send: the requested ones in the model's order
// (all when outs is empty), with classification applied. binary[i] says
// whether outputs[i] was requested in binary (HTTP).
func (s *Server) runInfer(ctx context.Context, m Model, req *backend.Request, outs []outputReq) (*backend.Response, []outputReq, error) {
	// The classification extension is the frontend's: refuse what it cannot
	// classify before the model does any work.
	for _, o := range outs {
		if o.classCount == 0 {
			continue
		}
		for _, spec := range m.Signature().Outputs {
			if d := datatype.FromConfig(spec.Datatype); spec.Name == o.name && !classifiable(d) {
				return nil, nil, invalidArg("class result not available for output '%s' due to unsupported type '%s'", o.name, d)
			}
		}
	}
	if len(outs) > 0 && req.Outputs == nil {
		req.Outputs = make([]string, len(outs))
		for i := range outs {
			req.Outputs[i] = outs[i].name
		}
	}
	resp, err := m.Infer(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	if resp == nil {
		return nil, nil, backend.Errorf(backend.CodeInternal, "model '%s' returned no response", m.Name())
	}
	if len(outs) == 0 {
		return resp, nil, nil
	}
	// Keep the requested outputs, in the model's order.
	if sameOutputs(resp.Outputs, outs) {
		return resp, outs, nil // all of them, in that order, as they are
	}
	kept := resp.Outputs[:0:0]
	how := make([]outputReq, 0, len(outs))
	for _, t := range resp.Outputs {
		for _, o := range outs {
			if o.name == t.Name {
				if o.classCount > 0 {
					ct, err := classify(t, o.classCount, m, req)
					if err != nil {
						return nil, nil, err
					}
					t = ct
				}
				kept = append(kept, t)
				how = append(how, o)
				break
			}
		}
	}
	if len(kept) != len(outs) {
		for _, o := range outs {
			found := false
			for _, t := range kept {
				found = found || t.Name == o.name
			}
			if !found {
				return nil, nil, backend.Errorf(backend.CodeInternal, "model '%s' did not produce requested output '%s'", m.Name(), o.name)
			}
		}
	}
	return &backend.Response{Outputs: kept, Parameters: resp.Parameters}, how, nil
}

// sameOutputs reports whether outs asks for exactly got, in its order,
// with no classification.
func sameOutputs(got []backend.Tensor, outs []outputReq) bool {
	if len(got) != len(outs) {
		return false
	}
	for i := range outs {
		if outs[i].name != got[i].Name || outs[i].classCount > 0 {
			return false
		}
	}
	return true
}

func classifiable(d datatype.Type) bool {
	return d != datatype.Bool && d != datatype.Bytes && d != datatype.FP16 && d != datatype.BF16 && d != datatype.Invalid
}

// classify turns a numeric output into the classification extension's
// BYTES tensor (docs/triton-batcher-and-kserve-v2.md §2.10): per batch item, the top k elements as
// "<value>:<index>[:<label>]", values printed as C++ to_string would.
func classify(t backend.Tensor, k int64, m Model, req *backend.Request) (backend.Tensor, error) {
	d := datatype.Parse(t.Datatype)
	if !classifiable(d) {
		return t, invalidArg("class result not available for output '%s' due to unsupported type '%s'", t.Name, t.Datatype)
	}
	count, variable, ok := datatype.ElementCount(t.Shape)
	if !ok || variable > 0 || count*int64(d.Size()) != int64(len(t.Data)) {
		return t, backend.Errorf(backend.CodeInternal, "output '%s' of model '%s' has %d bytes for shape %s", t.Name, m.Name(), len(t.Data), backend.FormatShape(t.Shape))
	}
	var labels []string
	sig := m.Signature()
	for _, o := range sig.Outputs {
		if o.Name == t.Name {
			labels = o.Labels
		}
	}
	batch := int64(1)
	batched := sig.MaxBatchSize > 0 && len(t.Shape) > 0
	if batched {
		batch = t.Shape[0]
	}
	per := int64(0)
	if batch > 0 {
		per = count / batch
	}
	kk := min(k, per)
	var out []byte
	idx := make([]int, per)
	for b := range batch {
		base := int(b * per)
		for i := range idx {
			idx[i] = base + i
		}
		sort.SliceStable(idx, func(i, j int) bool { return elementFloat(d, t.Data, idx[i]) > elementFloat(d, t.Data, idx[j]) })
		for _, i := range idx[:kk] {
			var s []byte
			if d == datatype.FP32 || d == datatype.FP64 {
				s = fmt.Appendf(s, "%f", elementFloat(d, t.Data, i))
			} else {
				s = appendElementJSON(s, d, t.Data, i)
			}
			s = append(s, ':')
			s = strconv.AppendInt(s, int64(i-base), 10)
			if i-base < len(labels) {
				s = append(s, ':')
				s = append(s, labels[i-base]...)
			}
			out = datatype.AppendElement(out, s)
		}
	}
	shape := []int64{kk}
	if batched {
		shape = []int64{batch, kk}
	}
	return backend.Tensor{Name: t.Name, Datatype: "BYTES", Shape: shape, Data: out}, nil
}
