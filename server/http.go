package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
	"unsafe"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/propagation"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
	"github.com/ofaserve/ofaserve/protocol/kserve"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
	"github.com/ofaserve/ofaserve/tracing"
)

// extensions are the protocol extensions this server implements ("logging"
// only with Options.Logging).
func (s *Server) extensions() []string {
	ext := []string{
		"classification", "model_repository", "model_repository(unload_dependents)", "schedule_policy",
		"model_configuration", "binary_tensor_data", "parameters", "statistics", "trace",
	}
	if s.opts.Logging != nil {
		ext = append(ext, "logging")
	}
	return ext
}

func (s *Server) newRouter() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.Use(s.logFailures, s.recoverJSON)
	r.NoRoute(func(c *gin.Context) { writeError(c, http.StatusNotFound, "Not Found") })
	r.NoMethod(func(c *gin.Context) { writeError(c, http.StatusMethodNotAllowed, "Method Not Allowed") })

	// Every route names its API group (Triton's names), which
	// --http-restricted-api may restrict.
	both := func(path, group string, h gin.HandlerFunc) {
		r.GET(path, s.guard(group, h))
		r.POST(path, s.guard(group, h))
	}
	get := func(path, group string, h gin.HandlerFunc) { r.GET(path, s.guard(group, h)) }
	post := func(path, group string, h gin.HandlerFunc) { r.POST(path, s.guard(group, h)) }
	both("/v2/health/live", "health", s.live)
	both("/v2/health/ready", "health", s.ready)
	both("/v2", "metadata", s.serverMetadata)
	get("/v2/models/stats", "statistics", s.stats)
	both("/v2/trace/setting", "trace", s.traceSetting)
	both("/v2/logging", "logging", s.logSettings)
	for _, base := range []string{"/v2/models/:model", "/v2/models/:model/versions/:version"} {
		both(base, "metadata", s.modelMetadata)
		both(base+"/ready", "health", s.modelReady)
		both(base+"/config", "model-config", s.modelConfig)
		get(base+"/stats", "statistics", s.stats)
		post(base+"/infer", "inference", s.infer)
		both(base+"/trace/setting", "trace", s.traceSetting)
	}
	post("/v2/repository/index", "model-repository", s.repoIndex)
	post("/v2/repository/:repo/index", "model-repository", s.repoIndex)
	post("/v2/repository/models/:model/load", "model-repository", s.repoLoad)
	post("/v2/repository/models/:model/unload", "model-repository", s.repoUnload)
	post("/v2/repository/:repo/models/:model/load", "model-repository", s.repoNamed)
	post("/v2/repository/:repo/models/:model/unload", "model-repository", s.repoNamed)
	if s.opts.Predict != nil {
		post("/predict", "inference", s.predict)
	}
	return r
}

// recoverJSON turns a panic in a handler into a 500 error response, so that
// no request can take the server down.
func (s *Server) recoverJSON(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic in HTTP handler", "path", c.Request.URL.Path, "panic", v)
			if !c.Writer.Written() {
				writeError(c, http.StatusInternalServerError, "internal error")
			}
			c.Abort()
		}
	}()
	c.Next()
}

func writeError(c *gin.Context, code int, msg string) {
	b := make([]byte, 0, len(msg)+16)
	b = append(b, `{"error":`...)
	b = kserve.AppendJSONString(b, msg)
	b = append(b, '}')
	c.Set(errReasonKey, msg)
	c.Data(code, "application/json", b)
}

func writeErr(c *gin.Context, err error) {
	writeError(c, httpStatusOf(err), err.Error())
}

func writeJSON(c *gin.Context, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(c, http.StatusInternalServerError, err.Error())
		return
	}
	c.Data(http.StatusOK, "application/json", b)
}

// version parses the optional version path segment: "" is
// kserve.LatestVersion; anything but a non-negative integer is a 400 that
// names it.
func version(c *gin.Context) (int64, bool) {
	v := c.Param("version")
	if v == "" {
		return kserve.LatestVersion, true
	}
	n, err := kserve.ParseVersion(v)
	if err != nil {
		writeErr(c, err)
		return 0, false
	}
	return n, true
}

func (s *Server) model(c *gin.Context) (Model, bool) {
	v, ok := version(c)
	if !ok {
		return nil, false
	}
	m, err := s.repo.Model(c.Param("model"), v)
	if err != nil {
		writeErr(c, err)
		return nil, false
	}
	return m, true
}

func (s *Server) live(c *gin.Context) { c.Status(http.StatusOK) }

func (s *Server) isReady() bool {
	s.mu.Lock()
	down := s.shutdown
	s.mu.Unlock()
	return !down && s.repo.Ready()
}

func (s *Server) ready(c *gin.Context) {
	if s.isReady() {
		c.Status(http.StatusOK)
		return
	}
	c.Status(http.StatusBadRequest)
}

func (s *Server) serverMetadata(c *gin.Context) {
	writeJSON(c, map[string]any{"name": s.opts.Name, "version": s.opts.Version, "extensions": s.extensions()})
}

type tensorMeta struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

type modelMeta struct {
	Name     string       `json:"name"`
	Versions []string     `json:"versions"`
	Platform string       `json:"platform"`
	Inputs   []tensorMeta `json:"inputs"`
	Outputs  []tensorMeta `json:"outputs"`
}

// metadata builds model metadata (docs/triton-batcher-and-kserve-v2.md §2.2): the requested version, or
// all ready versions when none was requested.
func (s *Server) metadata(m Model, requested bool) modelMeta {
	md := modelMeta{Name: m.Name(), Platform: m.Platform()}
	if requested {
		md.Versions = []string{strconv.FormatInt(m.Version(), 10)}
	} else {
		for _, e := range s.repo.Index(true) {
			if e.Name == m.Name() && e.Version > 0 {
				md.Versions = append(md.Versions, strconv.FormatInt(e.Version, 10))
			}
		}
		if len(md.Versions) == 0 {
			md.Versions = []string{strconv.FormatInt(m.Version(), 10)}
		}
	}
	conv := func(specs []backend.TensorSpec) []tensorMeta {
		out := make([]tensorMeta, len(specs))
		for i, sp := range specs {
			shape := make([]int64, 0, len(sp.Dims)+1)
			if m.Signature().MaxBatchSize > 0 {
				shape = append(shape, -1)
			}
			out[i] = tensorMeta{Name: sp.Name, Datatype: datatype.FromConfig(sp.Datatype).String(), Shape: append(shape, sp.Dims...)}
		}
		return out
	}
	md.Inputs, md.Outputs = conv(m.Signature().Inputs), conv(m.Signature().Outputs)
	return md
}

func (s *Server) modelMetadata(c *gin.Context) {
	m, ok := s.model(c)
	if !ok {
		return
	}
	writeJSON(c, s.metadata(m, c.Param("version") != ""))
}

func (s *Server) modelReady(c *gin.Context) {
	v, ok := version(c)
	if !ok {
		return
	}
	m, err := s.repo.Model(c.Param("model"), v)
	if err != nil {
		if backend.CodeOf(err) == backend.CodeUnavailable {
			writeError(c, http.StatusBadRequest, "Model version not ready")
			return
		}
		writeErr(c, err)
		return
	}
	if !m.Ready() {
		writeError(c, http.StatusBadRequest, "Model version not ready")
		return
	}
	c.Status(http.StatusOK)
}

func (s *Server) modelConfig(c *gin.Context) {
	m, ok := s.model(c)
	if !ok {
		return
	}
	b, err := modelconfig.ToJSON(m.Config())
	if err != nil {
		writeErr(c, backend.Errorf(backend.CodeInternal, "cannot render the config of model '%s': %w", m.Name(), err))
		return
	}
	c.Data(http.StatusOK, "application/json", b)
}

func (s *Server) stats(c *gin.Context) {
	v, ok := version(c)
	if !ok {
		return
	}
	st, err := s.collectStats(c.Param("model"), v, c.Param("version") != "")
	if err != nil {
		writeErr(c, err)
		return
	}
	writeJSON(c, statsJSON(st))
}

func (s *Server) repoIndex(c *gin.Context) {
	readyOnly := false
	var body map[string]json.RawMessage
	buf := getBuf()
	defer putBuf(buf)
	if err := readBody(c.Request, buf, s.opts.MaxInputSize); err != nil {
		writeErr(c, err)
		return
	}
	if buf.Len() > 0 {
		if err := json.Unmarshal(buf.Bytes(), &body); err != nil {
			writeErr(c, invalidArg("failed to parse the request JSON buffer: %v", err))
			return
		}
		if v, ok := body["ready"]; ok {
			if string(v) != "true" && string(v) != "false" {
				writeErr(c, invalidArg("Invalid value for 'ready': expected a boolean"))
				return
			}
			readyOnly = string(v) == "true"
		}
	}
	type entry struct {
		Name    string `json:"name"`
		Version string `json:"version,omitempty"`
		State   string `json:"state"`
		Reason  string `json:"reason,omitempty"`
	}
	out := []entry{}
	for _, e := range s.repo.Index(readyOnly) {
		en := entry{Name: e.Name, State: e.State, Reason: e.Reason}
		if e.Version > 0 {
			en.Version = strconv.FormatInt(e.Version, 10)
		}
		out = append(out, en)
	}
	writeJSON(c, out)
}

// loadParams reads the optional load/unload body: "config" (a model
// config in JSON that replaces config.pbtxt) and "unload_dependents" are
// understood; file uploads are not supported.
func (s *Server) loadParams(c *gin.Context) (*modelconfig.ModelConfig, error) {
	buf := getBuf()
	defer putBuf(buf)
	if err := readBody(c.Request, buf, s.opts.MaxInputSize); err != nil {
		return nil, err
	}
	if buf.Len() == 0 {
		return nil, nil
	}
	var body struct {
		Parameters map[string]json.RawMessage `json:"parameters"`
	}
	if err := json.Unmarshal(buf.Bytes(), &body); err != nil {
		return nil, invalidArg("failed to parse the request JSON buffer: %v", err)
	}
	var override *modelconfig.ModelConfig
	for k, v := range body.Parameters {
		switch k {
		case "unload_dependents":
		case "config":
			var text string
			if err := json.Unmarshal(v, &text); err != nil {
				return nil, invalidArg("load parameter 'config' must be a string holding the model config in JSON")
			}
			cfg, err := modelconfig.FromJSON([]byte(text))
			if err != nil {
				return nil, invalidArg("load parameter 'config': %v", err)
			}
			override = cfg
		default:
			return nil, backend.Errorf(backend.CodeUnsupported, "load parameter '%s' is not supported by this server", k)
		}
	}
	return override, nil
}

func (s *Server) repoLoad(c *gin.Context) {
	override, err := s.loadParams(c)
	if err != nil {
		writeErr(c, err)
		return
	}
	if err := s.repo.Load(c.Request.Context(), c.Param("model"), override); err != nil {
		writeErr(c, err)
		return
	}
	c.Status(http.StatusOK)
}

func (s *Server) repoUnload(c *gin.Context) {
	if _, err := s.loadParams(c); err != nil {
		writeErr(c, err)
		return
	}
	if err := s.repo.Unload(c.Request.Context(), c.Param("model")); err != nil {
		writeErr(c, err)
		return
	}
	c.Status(http.StatusOK)
}

func (s *Server) repoNamed(c *gin.Context) {
	writeErr(c, backend.Errorf(backend.CodeUnsupported, "'repository_name' specification is not supported"))
}

// infer serves POST .../infer: JSON, the binary-data extension and raw
// binary bodies, compressed or not (docs/triton-batcher-and-kserve-v2.md §2.3-2.7).
func (s *Server) infer(c *gin.Context) {
	start := time.Now()
	m, ok := s.model(c)
	if !ok {
		return
	}
	if err := precheck(m); err != nil {
		writeErr(c, err) // refused before the body is read: an overloaded model costs its refused clients little
		return
	}
	r := c.Request
	body := getBuf()
	if err := readBody(r, body, s.opts.MaxInputSize); err != nil {
		putBuf(body)
		if backend.CodeOf(err) == backend.CodeUnsupported {
			c.Header("Accept-Encoding", "gzip, deflate")
		}
		writeErr(c, err)
		return
	}
	hi, err := kserve.DecodeHTTP(m.Signature(), r.Header.Get("Inference-Header-Content-Length"), body.Bytes(), s.opts.MaxInputSize)
	if err != nil {
		putBuf(body)
		writeErr(c, err)
		return
	}
	hi.Request.Start = time.Now() // request_start: decoded, as Triton's core starts it
	tr, ctx := s.traceStart(r.Context(), m, &hi.Request, propagation.HeaderCarrier(r.Header), tracing.HTTPRecvStart, tracing.HTTPRecvEnd, start)
	resp, outs, err := s.runInfer(ctx, m, &hi.Request, hi.Outputs)
	if tr != nil {
		defer func() { s.traceEnd(tr, &hi.Request, resp, tracing.HTTPSendStart, tracing.HTTPSendEnd) }()
	}
	if err != nil {
		// The model may still hold references into body: let GC have it.
		writeErr(c, err)
		return
	}
	binaryAt := func(i int) bool {
		if outs == nil {
			return hi.BinaryOutput
		}
		return outs[i].Binary
	}
	out := getBytes()
	b, jsonLen, err := kserve.EncodeHTTP((*out)[:0], m.Name(), m.Version(), hi.Request.ID, resp, binaryAt)
	putBuf(body)
	defer putBytes(out, b)
	if err != nil {
		writeErr(c, err)
		return
	}
	// The header values share one allocation (net/http's Set allocates a
	// slice per value, strconv.Itoa a string per number).
	hv := new(inferHeaders)
	h := c.Writer.Header()
	hv.ctype[0] = "application/json"
	if jsonLen >= 0 {
		hv.ctype[0] = "application/octet-stream"
		h["Inference-Header-Content-Length"] = hv.number(&hv.hlen, jsonLen)
	}
	h["Content-Type"] = hv.ctype[:]
	if tr != nil {
		tr.Stamp(tracing.HTTPSendStart, time.Now())
	}
	if enc := acceptEncoding(r.Header.Get("Accept-Encoding")); enc != "" {
		if z := compress(enc, b); z != nil {
			h.Set("Content-Encoding", enc)
			h["Content-Length"] = hv.number(&hv.clen, z.Len())
			c.Writer.WriteHeader(http.StatusOK)
			_, _ = c.Writer.Write(z.Bytes())
			putBuf(z)
			return
		}
	}
	// Written directly: gin's c.Data allocates the Content-Type and
	// Content-Length values again.
	h["Content-Length"] = hv.number(&hv.clen, len(b))
	c.Writer.WriteHeader(http.StatusOK)
	_, _ = c.Writer.Write(b)
}

// inferHeaders holds an inference response's header values.
type inferHeaders struct {
	ctype, hlen, clen [1]string
	digits            [40]byte
	used              int
}

// number formats n into the digits and returns it as dst's only value.
func (hv *inferHeaders) number(dst *[1]string, n int) []string {
	d := strconv.AppendInt(hv.digits[hv.used:hv.used], int64(n), 10)
	hv.used += len(d)
	dst[0] = unsafe.String(unsafe.SliceData(d), len(d))
	return dst[:]
}
