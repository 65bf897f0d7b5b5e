package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Restricted APIs, as Triton's --http-restricted-api and
// --grpc-restricted-protocol: each flag value "<group>[,<group>...]:<key>=<value>"
// makes the named API groups answer only requests that carry the header
// (HTTP) or metadata key (gRPC) <key> with exactly <value>; any other
// request gets 403 (HTTP) or PERMISSION_DENIED (gRPC) naming the group and
// the header. A group may be restricted by one flag value only. Off (open)
// by default.

// APIGroups are the API groups, as Triton names them.
var apiGroups = []string{"health", "metadata", "inference", "shared-memory", "model-config",
	"model-repository", "statistics", "trace", "logging"}

// Restriction is the header one restricted API group requires.
type Restriction struct{ Key, Value string }

// Restrictions maps an API group to the header it requires.
type Restrictions map[string]Restriction

// ParseRestrictions parses the values of one restriction flag (named flag,
// for the messages).
func ParseRestrictions(flag string, values []string) (Restrictions, error) {
	r := Restrictions{}
	for _, v := range values {
		groups, kv, ok := strings.Cut(v, ":")
		key, val, ok2 := strings.Cut(kv, "=")
		key = strings.TrimSpace(key)
		if !ok || !ok2 || key == "" || groups == "" {
			return nil, fmt.Errorf("--%s=%q: want <api-group>[,<api-group>...]:<key>=<value>", flag, v)
		}
		for g := range strings.SplitSeq(groups, ",") {
			g = strings.TrimSpace(g)
			if !slices.Contains(apiGroups, g) {
				return nil, fmt.Errorf("--%s: unknown API group %q (want one of %s)", flag, g, strings.Join(apiGroups, ", "))
			}
			if _, dup := r[g]; dup {
				return nil, fmt.Errorf("--%s: API group %q is restricted more than once", flag, g)
			}
			r[g] = Restriction{Key: key, Value: val}
		}
	}
	return r, nil
}

// check returns the refusal message for a request to group whose header
// key has the value get(key) returns, or "" when it may pass.
func (r Restrictions) check(group string, get func(key string) (string, bool)) string {
	rs, ok := r[group]
	if !ok {
		return ""
	}
	if v, ok := get(rs.Key); ok && v == rs.Value {
		return ""
	}
	return fmt.Sprintf("API group '%s' is restricted: the request needs header '%s' with the configured value", group, rs.Key)
}

// guard wraps an HTTP handler of the given API group with its restriction.
func (s *Server) guard(group string, h gin.HandlerFunc) gin.HandlerFunc {
	if _, ok := s.opts.HTTPRestricted[group]; !ok {
		return h
	}
	return func(c *gin.Context) {
		get := func(k string) (string, bool) {
			v, ok := c.Request.Header[http.CanonicalHeaderKey(k)]
			if !ok || len(v) == 0 {
				return "", false
			}
			return v[0], true
		}
		if msg := s.opts.HTTPRestricted.check(group, get); msg != "" {
			writeError(c, http.StatusForbidden, msg)
			return
		}
		h(c)
	}
}

// grpcGroup is the API group of a gRPC method ("" for none, e.g. reflection).
func grpcGroup(fullMethod string) string {
	if strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") {
		return "health"
	}
	const svc = "/inference.GRPCInferenceService/"
	m, ok := strings.CutPrefix(fullMethod, svc)
	if !ok {
		return ""
	}
	switch m {
	case "ServerLive", "ServerReady", "ModelReady":
		return "health"
	case "ServerMetadata", "ModelMetadata":
		return "metadata"
	case "ModelInfer", "ModelStreamInfer":
		return "inference"
	case "ModelConfig":
		return "model-config"
	case "ModelStatistics":
		return "statistics"
	case "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload":
		return "model-repository"
	case "TraceSetting":
		return "trace"
	case "LogSettings":
		return "logging"
	}
	if strings.Contains(m, "SharedMemory") {
		return "shared-memory"
	}
	return ""
}

func (s *Server) grpcRestricted(ctx context.Context, fullMethod string) error {
	if len(s.opts.GRPCRestricted) == 0 {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(k string) (string, bool) {
		v := md.Get(k)
		if len(v) == 0 {
			return "", false
		}
		return v[0], true
	}
	if msg := s.opts.GRPCRestricted.check(grpcGroup(fullMethod), get); msg != "" {
		return status.Error(codes.PermissionDenied, msg)
	}
	return nil
}

func (s *Server) restrictUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.grpcRestricted(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) restrictStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.grpcRestricted(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}
