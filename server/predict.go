package server

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/propagation"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
	"github.com/ofaserve/ofaserve/protocol/kserve"
	"github.com/ofaserve/ofaserve/tracing"
)

// Predict configures POST /predict, a multipart/form-data convenience
// endpoint (the OFA tutorial's FastAPI glue, built in). Each form field
// becomes one BYTES input of the model, one element; an optional field
// "model" names the model (default Model); the answer is the first element
// of the BYTES output Output, sent as it is. The server knows no model
// kind: main fills this from the constants of the kind it serves.
type Predict struct {
	// Model is the model run when the form names none.
	Model string
	// Fields are the form fields, in the order error messages list them.
	Fields []PredictField
	// Output is the BYTES output whose first element is the answer.
	Output string
}

// PredictField is one form field of POST /predict.
type PredictField struct {
	Name     string // the form field
	Input    string // the model's BYTES input it becomes
	Required bool
	File     bool // the field carries a file (messages say so)
}

// predict serves POST /predict. Errors are {"error": "..."} with the usual
// statuses: 400 for a bad form or bad input, 404 for an unknown model.
func (s *Server) predict(c *gin.Context) {
	start := time.Now()
	p := s.opts.Predict
	r := c.Request
	r.Body = http.MaxBytesReader(c.Writer, r.Body, s.opts.MaxInputSize)
	fields, err := p.readForm(r)
	if err != nil {
		writeErr(c, err)
		return
	}
	name := p.Model
	if v, ok := fields["model"]; ok && len(v) > 0 {
		name = string(v)
	}
	m, err := s.repo.Model(name, kserve.LatestVersion)
	if err != nil {
		writeErr(c, err)
		return
	}
	shape := []int64{1}
	if m.Signature().MaxBatchSize > 0 {
		shape = []int64{1, 1}
	}
	req := backend.Request{}
	for _, f := range p.Fields {
		v, ok := fields[f.Name]
		if !ok {
			continue
		}
		data := datatype.AppendElement(make([]byte, 0, 4+len(v)), v)
		req.Inputs = append(req.Inputs, backend.Tensor{Name: f.Input, Datatype: "BYTES", Shape: shape, Data: data})
	}
	req.Start = time.Now() // request_start: decoded
	tr, ctx := s.traceStart(r.Context(), m, &req, propagation.HeaderCarrier(r.Header), tracing.HTTPRecvStart, tracing.HTTPRecvEnd, start)
	resp, _, err := s.runInfer(ctx, m, &req, []kserve.Output{{Name: p.Output}})
	defer func() { s.traceEnd(tr, &req, resp, tracing.HTTPSendStart, tracing.HTTPSendEnd) }()
	if err != nil {
		writeErr(c, err)
		return
	}
	for _, t := range resp.Outputs {
		if t.Name != p.Output || t.Datatype != "BYTES" {
			continue
		}
		for first, err := range datatype.Elements(t.Data) {
			if err == nil {
				c.Data(http.StatusOK, "application/json", first)
				return
			}
		}
	}
	writeErr(c, backend.Errorf(backend.CodeInternal, "model '%s' returned no %s string", m.Name(), p.Output))
}

// readForm reads the multipart fields into memory (the body is already
// bounded). Unknown and repeated fields are errors, as are missing
// required ones.
func (p *Predict) readForm(r *http.Request) (map[string][]byte, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, invalidArg("POST /predict expects a multipart/form-data body with the fields %s: %v", p.usage(), err)
	}
	names := make([]string, 0, len(p.Fields)+1)
	for _, f := range p.Fields {
		names = append(names, f.Name)
	}
	names = append(names, "model")
	fields := make(map[string][]byte, len(names))
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, formError(err)
		}
		name := part.FormName()
		if !slices.Contains(names, name) {
			return nil, invalidArg("POST /predict: unexpected form field '%s' (expected %s)", name, strings.Join(names, ", "))
		}
		if _, dup := fields[name]; dup {
			return nil, invalidArg("POST /predict: form field '%s' is given twice", name)
		}
		data, err := io.ReadAll(part)
		if err != nil {
			return nil, formError(err)
		}
		fields[name] = data
	}
	for _, f := range p.Fields {
		if _, ok := fields[f.Name]; f.Required && !ok {
			return nil, invalidArg("POST /predict: form field '%s' is required", f.Name)
		}
	}
	return fields, nil
}

// usage lists the fields: "image (a file), hypothesis, and optionally
// premise and model".
func (p *Predict) usage() string {
	var required []string
	optional := []string{}
	for _, f := range p.Fields {
		switch {
		case f.Required && f.File:
			required = append(required, f.Name+" (a file)")
		case f.Required:
			required = append(required, f.Name)
		default:
			optional = append(optional, f.Name)
		}
	}
	optional = append(optional, "model")
	last := len(optional) - 1
	opt := optional[last]
	if last > 0 {
		opt = strings.Join(optional[:last], ", ") + " and " + opt
	}
	if len(required) == 0 {
		return "optionally " + opt
	}
	return strings.Join(required, ", ") + ", and optionally " + opt
}

func formError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return invalidArg("POST /predict: the body exceeds the maximum allowed size of %d bytes", tooBig.Limit)
	}
	return invalidArg("POST /predict: reading the multipart body: %v", err)
}
