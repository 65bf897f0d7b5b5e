package server

import (
	"context"
	"errors"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/propagation"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
	"github.com/ofaserve/ofaserve/protocol/kserve"
	"github.com/ofaserve/ofaserve/tracing"
)

// The trace extension: GET/POST /v2[/models/{m}]/trace/setting and gRPC TraceSetting read and change the
// tracing settings; each inference request is offered to the tracer after decoding, and a traced one
// carries its trace in its context down to its model's batcher, whose Observer stamps it (observeTrace).

// traceStart samples req; when it is traced it stamps the frontend's receive (recvStart at started,
// recvEnd when the request was decoded: req.Start, Triton's request_start), records its inputs at the
// TENSORS level, and returns the context that carries the trace.
func (s *Server) traceStart(ctx context.Context, m Model, req *backend.Request, carrier propagation.TextMapCarrier,
	recvStart, recvEnd string, started time.Time) (*tracing.Trace, context.Context) {
	tr := s.tracer.Start(m.Name(), m.Version(), req.ID, carrier)
	if tr == nil {
		return nil, ctx
	}
	tr.Stamp(recvStart, started)
	tr.Stamp(recvEnd, req.Start)
	for _, in := range req.Inputs {
		tr.Tensor(tracing.TensorQueueInput, in.Name, in.Datatype, in.Shape, in.Data)
	}
	return tr, tracing.NewContext(ctx, tr)
}

// traceEnd finishes a trace: a request that never reached a batch gets REQUEST_START and REQUEST_END from
// the frontend, the outputs are recorded at the TENSORS level, and the send stamps close it (sendStart
// now unless the frontend stamped it already).
func (s *Server) traceEnd(tr *tracing.Trace, req *backend.Request, resp *backend.Response, sendStart, sendEnd string) {
	if tr == nil {
		return
	}
	now := time.Now()
	if !tr.Has(tracing.RequestStart) {
		start := req.Start
		if start.IsZero() {
			start = now
		}
		tr.Stamp(tracing.RequestStart, start)
		tr.Stamp(tracing.RequestEnd, now)
	}
	if resp != nil {
		for _, out := range resp.Outputs {
			tr.Tensor(tracing.TensorBackendOutput, out.Name, out.Datatype, out.Shape, out.Data)
		}
	}
	if !tr.Has(sendStart) {
		tr.Stamp(sendStart, now)
	}
	tr.Stamp(sendEnd, time.Now())
	tr.Finish()
}

// observeTrace stamps the batcher's timestamps of one executed request into its trace, if it has one: the
// trace's own when the model is the trace's and has not run yet, else a child trace (a model run on the
// request's behalf, such as an ensemble step).
func (s *Server) observeTrace(ctx context.Context, name string, version int64, t *batcher.Times) {
	tr := tracing.FromContext(ctx)
	if tr == nil {
		return
	}
	if n, v := tr.Model(); n != name || v != version || tr.Has(tracing.QueueStart) {
		tr = tr.Child(name, version)
	}
	tr.Stamp(tracing.RequestStart, t.RequestStart)
	tr.Stamp(tracing.QueueStart, t.QueueStart)
	tr.Stamp(tracing.ComputeStart, t.ComputeStart)
	tr.Stamp(tracing.ComputeInputEnd, t.ComputeInputEnd)
	tr.Stamp(tracing.ComputeOutputStart, t.ComputeOutputStart)
	tr.Stamp(tracing.ComputeEnd, t.ComputeEnd)
	tr.Stamp(tracing.RequestEnd, t.RequestEnd)
}

// traceModel checks the model a trace setting request names ("" for the global setting): like Triton it
// must have a ready version.
func (s *Server) traceModel(name string) error {
	if name == "" {
		return nil
	}
	if m, err := s.repo.Model(name, kserve.LatestVersion); err != nil || !m.Ready() {
		return invalidArg("Request for unknown model : %s", name)
	}
	return nil
}

// updateTrace applies decoded settings to model's trace setting (none: just read it) and returns the
// setting in force, rendered for the wire.
func (s *Server) updateTrace(model string, values map[string]any, update bool) (map[string][]string, error) {
	if err := s.traceModel(model); err != nil {
		return nil, err
	}
	if !update {
		return s.tracer.Values(s.tracer.Setting(model)), nil
	}
	u, err := tracing.ParseUpdate(values)
	if errors.Is(err, tracing.ErrFileUpdate) {
		return nil, backend.Errorf(backend.CodeUnsupported, "%v", err)
	}
	if err != nil {
		return nil, invalidArg("%v", err)
	}
	set, err := s.tracer.Update(model, u)
	if err != nil {
		return nil, invalidArg("%v", err)
	}
	return s.tracer.Values(set), nil
}

// traceSetting serves GET and POST /v2[/models/{m}[/versions/{v}]]/trace/setting (a version is accepted
// and ignored: settings are per model, as in Triton).
func (s *Server) traceSetting(c *gin.Context) {
	var values map[string]any
	post := c.Request.Method == "POST"
	if post {
		buf := getBuf()
		defer putBuf(buf)
		if err := readBody(c.Request, buf, s.opts.MaxInputSize); err != nil {
			writeErr(c, err)
			return
		}
		v, err := kserve.DecodeSettings(buf.Bytes())
		if err != nil {
			writeErr(c, invalidArg("%v", err))
			return
		}
		values = v
	}
	out, err := s.updateTrace(c.Param("model"), values, post)
	if err != nil {
		writeErr(c, err)
		return
	}
	writeJSON(c, kserve.TraceSettingsJSON(out))
}

// TraceSetting is the gRPC trace extension: settings change them (an empty value list clears one), none
// reads them.
func (g *grpcService) TraceSetting(_ context.Context, r *pb.TraceSettingRequest) (*pb.TraceSettingResponse, error) {
	out, err := g.s.updateTrace(r.GetModelName(), kserve.TraceSettingsFromGRPC(r.GetSettings()), len(r.GetSettings()) > 0)
	if err != nil {
		return nil, grpcError(err)
	}
	return kserve.TraceSettingsGRPC(out), nil
}
