package server

import (
	"context"
	"errors"

	"github.com/gin-gonic/gin"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/logging"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
	"github.com/ofaserve/ofaserve/protocol/kserve"
)

// The logging extension: GET/POST /v2/logging and gRPC LogSettings read and change the running server's
// log settings (Options.Logging, the control over the handler of the server's logger).

// updateLogging applies decoded settings (none: just read them) and returns the settings in force.
func (s *Server) updateLogging(values map[string]any) (kserve.LogSettings, error) {
	lc := s.opts.Logging
	if lc == nil {
		return kserve.LogSettings{}, backend.Errorf(backend.CodeUnavailable, "the server does not support dynamic logging")
	}
	if len(values) > 0 {
		u, err := logging.ParseUpdate(values)
		if errors.Is(err, logging.ErrFileUpdate) {
			return kserve.LogSettings{}, backend.Errorf(backend.CodeUnsupported, "%v", err)
		}
		if err != nil {
			return kserve.LogSettings{}, invalidArg("%v", err)
		}
		lc.Apply(u)
	}
	st := lc.Settings()
	return kserve.LogSettings{File: st.File, Info: st.Info, Warning: st.Warning, Error: st.Error,
		VerboseLevel: st.VerboseLevel, Format: st.Format}, nil
}

// logSettings serves GET and POST /v2/logging.
func (s *Server) logSettings(c *gin.Context) {
	var values map[string]any
	if c.Request.Method == "POST" {
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
	st, err := s.updateLogging(values)
	if err != nil {
		writeErr(c, err)
		return
	}
	writeJSON(c, st.JSON())
}

// LogSettings is the gRPC logging extension.
func (g *grpcService) LogSettings(_ context.Context, r *pb.LogSettingsRequest) (*pb.LogSettingsResponse, error) {
	st, err := g.s.updateLogging(kserve.LogSettingsFromGRPC(r.GetSettings()))
	if err != nil {
		return nil, grpcError(err)
	}
	return st.GRPC(), nil
}
