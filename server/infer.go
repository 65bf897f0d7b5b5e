package server

import (
	"context"
	"log/slog"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
	"github.com/ofaserve/ofaserve/protocol/kserve"
)

// runInfer runs req (the model validates it: backend.Signature.Validate)
// and returns the outputs to send: the requested ones in the model's order
// (all when outs is empty), with classification applied. binary[i] says
// whether outputs[i] was requested in binary (HTTP).
func (s *Server) runInfer(ctx context.Context, m Model, req *backend.Request, outs []kserve.Output) (*backend.Response, []kserve.Output, error) {
	// The classification extension is the frontend's: refuse what it cannot
	// classify before the model does any work.
	for _, o := range outs {
		if o.ClassCount == 0 {
			continue
		}
		for _, spec := range m.Signature().Outputs {
			if d := datatype.FromConfig(spec.Datatype); spec.Name == o.Name && !kserve.Classifiable(d) {
				return nil, nil, invalidArg("class result not available for output '%s' due to unsupported type '%s'", o.Name, d)
			}
		}
	}
	if len(outs) > 0 && req.Outputs == nil {
		req.Outputs = make([]string, len(outs))
		for i := range outs {
			req.Outputs[i] = outs[i].Name
		}
	}
	resp, err := m.Infer(ctx, req)
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.LogAttrs(ctx, slog.LevelDebug, "inference request", slog.String("model", m.Name()),
			slog.Int64("version", m.Version()), slog.String("id", req.ID), slog.Any("err", err))
	}
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
	how := make([]kserve.Output, 0, len(outs))
	for _, t := range resp.Outputs {
		for _, o := range outs {
			if o.Name == t.Name {
				if o.ClassCount > 0 {
					ct, err := kserve.Classify(t, o.ClassCount, m.Signature())
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
				found = found || t.Name == o.Name
			}
			if !found {
				return nil, nil, backend.Errorf(backend.CodeInternal, "model '%s' did not produce requested output '%s'", m.Name(), o.Name)
			}
		}
	}
	return &backend.Response{Outputs: kept, Parameters: resp.Parameters}, how, nil
}

// sameOutputs reports whether outs asks for exactly got, in its order,
// with no classification.
func sameOutputs(got []backend.Tensor, outs []kserve.Output) bool {
	if len(got) != len(outs) {
		return false
	}
	for i := range outs {
		if outs[i].Name != got[i].Name || outs[i].ClassCount > 0 {
			return false
		}
	}
	return true
}
