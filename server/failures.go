package server

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// Every failed request leaves one log line at the default level, so that an
// operator sees refusals without turning verbose logging on: a client's
// fault (4xx, a gRPC code other than INTERNAL/UNKNOWN/UNAVAILABLE...) at
// INFO, a server's fault at ERROR. The line names the model (when the path
// has one), the status, the reason (the error message the client got) and
// the latency.

// errReasonKey is where writeError leaves the message for logFailures.
const errReasonKey = "ofaserve.error"

// logFailures is the HTTP middleware that logs failed requests.
func (s *Server) logFailures(c *gin.Context) {
	start := time.Now()
	c.Next()
	code := c.Writer.Status()
	if code < 400 {
		return
	}
	reason, _ := c.Get(errReasonKey)
	lvl := slog.LevelInfo
	if code >= 500 {
		lvl = slog.LevelError
	}
	s.log.Log(c.Request.Context(), lvl, "request failed", "protocol", "http", "method", c.Request.Method,
		"path", c.Request.URL.Path, "model", c.Param("model"), "status", code, "reason", reason,
		"latency", time.Since(start))
}

// logUnaryFailures is the gRPC unary interceptor that logs failed calls.
func (s *Server) logUnaryFailures(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	markReached(ctx)
	start := time.Now()
	resp, err := h(ctx, req)
	if err != nil {
		s.logGRPCFailure(ctx, info.FullMethod, modelOf(req), err, start)
	}
	return resp, err
}

// logStreamFailures is the gRPC stream interceptor that logs failed streams.
func (s *Server) logStreamFailures(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	markReached(ss.Context())
	start := time.Now()
	err := h(srv, ss)
	if err != nil {
		s.logGRPCFailure(ss.Context(), info.FullMethod, "", err, start)
	}
	return err
}

func (s *Server) logGRPCFailure(ctx context.Context, method, model string, err error, start time.Time) {
	st, _ := status.FromError(err)
	lvl := slog.LevelInfo
	switch st.Code() {
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		lvl = slog.LevelError
	}
	s.log.Log(ctx, lvl, "request failed", "protocol", "grpc", "method", method[strings.LastIndexByte(method, '/')+1:],
		"model", model, "code", st.Code().String(), "reason", st.Message(), "latency", time.Since(start))
}

// modelOf returns the model name of a gRPC request that has one.
func modelOf(req any) string {
	switch r := req.(type) {
	case interface{ GetModelName() string }:
		return r.GetModelName()
	case interface{ GetName() string }:
		return r.GetName()
	}
	return ""
}

// A call can fail before any interceptor runs: grpc-go refuses a message over MaxRecvMsgSize
// (RESOURCE_EXHAUSTED) while decoding it, and a unary call's message is decoded before its interceptors are
// called. unreachedCalls, a stats handler, sees every call: TagRPC gives each a mark, the interceptors set
// it, and a call that ended in an error with its mark unset is logged here, as the interceptors would have.
type unreachedCalls struct{ s *Server }

type callMarkKey struct{}

type callMark struct {
	method  string
	start   time.Time
	reached atomic.Bool
}

func markReached(ctx context.Context) {
	if m, ok := ctx.Value(callMarkKey{}).(*callMark); ok {
		m.reached.Store(true)
	}
}

func (u unreachedCalls) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, callMarkKey{}, &callMark{method: info.FullMethodName, start: time.Now()})
}

func (u unreachedCalls) HandleRPC(ctx context.Context, st stats.RPCStats) {
	end, ok := st.(*stats.End)
	if !ok || end.Error == nil || end.IsClient() {
		return
	}
	if m, ok := ctx.Value(callMarkKey{}).(*callMark); ok && !m.reached.Load() {
		u.s.logGRPCFailure(ctx, m.method, "", end.Error, m.start)
	}
}

func (unreachedCalls) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (unreachedCalls) HandleConn(context.Context, stats.ConnStats) {}
