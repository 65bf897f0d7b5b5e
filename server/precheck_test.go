package server

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ofaserve/ofaserve/backend"
)

// A model whose queue is full at every level is refused before its request is read: even a body that is not
// JSON gets the queue's 503 / UNAVAILABLE, and the model never sees the request. With room, the same body is
// read and refused as the bad body it is.
func TestPrecheckRefusesBeforeTheBody(t *testing.T) {
	full := backend.Errorf(backend.CodeUnavailable, "Exceeds maximum queue size")
	for _, c := range []struct {
		name     string
		precheck error
		body     string
		code     int
		grpcCode codes.Code
		msg      string
	}{
		{"full, garbage body", full, "{not json", http.StatusServiceUnavailable, codes.Unavailable, "Exceeds maximum queue size"},
		{"full, good body", full, simpleReq, http.StatusServiceUnavailable, codes.Unavailable, "Exceeds maximum queue size"},
		{"room, garbage body", nil, "{not json", http.StatusBadRequest, codes.OK, ""},
		{"room, good body", nil, simpleReq, http.StatusOK, codes.OK, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			repo := testRepo()
			m := repo.models["simple"][1]
			m.precheck = c.precheck
			h := newTestServer(t, repo, Options{}).HTTPHandler()
			r := do(t, h, "POST", "/v2/models/simple/infer", []byte(c.body))
			if r.code != c.code || !strings.Contains(string(r.body), c.msg) {
				t.Fatalf("HTTP: %d %s, want %d with %q", r.code, r.body, c.code, c.msg)
			}
			if seen := m.lastRequest() != nil; seen != (c.code == http.StatusOK) {
				t.Fatalf("the model saw the request: %v (status %d)", seen, r.code)
			}
			if c.body != simpleReq {
				return // gRPC has no unparsed body to send
			}
			cl, _ := grpcClient(t, repo)
			_, err := cl.ModelInfer(context.Background(), simpleGRPCRequest())
			if got := status.Code(err); got != c.grpcCode {
				t.Fatalf("gRPC: %v, want %v", err, c.grpcCode)
			}
		})
	}
}
