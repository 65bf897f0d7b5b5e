package server

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
	"github.com/ofaserve/ofaserve/protocol/kserve"
)

// DefaultPredictModel is the model POST /predict runs when the form names
// none.
const DefaultPredictModel = "ofa_entailment"

// predict serves POST /predict, the OFA tutorial's FastAPI glue built in.
// The body is multipart/form-data with the fields image (the image file,
// required), hypothesis (required), premise (optional) and model (optional,
// default DefaultPredictModel). Each becomes the model's BYTES input of that
// name in upper case, one element, and the answer is the first element of
// the model's RESULT output as it is (for ofa models the JSON
// {"label","confidence","all_scores"}). Errors are {"error": "..."} with the
// usual statuses: 400 for a bad form or bad input, 404 for an unknown model.
func (s *Server) predict(c *gin.Context) {
	start := time.Now()
	r := c.Request
	r.Body = http.MaxBytesReader(c.Writer, r.Body, s.opts.MaxInputSize)
	fields, err := readPredictForm(r)
	if err != nil {
		writeErr(c, err)
		return
	}
	name := DefaultPredictModel
	if v, ok := fields["model"]; ok && len(v) > 0 {
		name = string(v)
	}
	m, err := s.repo.Model(name, -1)
	if err != nil {
		writeErr(c, err)
		return
	}
	shape := []int64{1}
	if m.Signature().MaxBatchSize > 0 {
		shape = []int64{1, 1}
	}
	req := backend.Request{Start: start}
	for _, f := range []struct{ field, input string }{{"image", "IMAGE"}, {"hypothesis", "HYPOTHESIS"}, {"premise", "PREMISE"}} {
		v, ok := fields[f.field]
		if !ok {
			continue
		}
		data := datatype.AppendElement(make([]byte, 0, 4+len(v)), v)
		req.Inputs = append(req.Inputs, backend.Tensor{Name: f.input, Datatype: "BYTES", Shape: shape, Data: data})
	}
	resp, _, err := s.runInfer(r.Context(), m, &req, []kserve.Output{{Name: "RESULT"}})
	if err != nil {
		writeErr(c, err)
		return
	}
	for _, t := range resp.Outputs {
		if t.Name != "RESULT" || t.Datatype != "BYTES" {
			continue
		}
		for first, err := range datatype.Elements(t.Data) {
			if err == nil {
				c.Data(http.StatusOK, "application/json", first)
				return
			}
		}
	}
	writeErr(c, backend.Errorf(backend.CodeInternal, "model '%s' returned no RESULT string", m.Name()))
}

// readPredictForm reads /predict's multipart fields into memory (the body
// is already bounded). Unknown and repeated fields are errors, as are a
// missing image or hypothesis.
func readPredictForm(r *http.Request) (map[string][]byte, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, invalidArg("POST /predict expects a multipart/form-data body with the fields image (a file), hypothesis, and optionally premise and model: %v", err)
	}
	fields := make(map[string][]byte, 4)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, formError(err)
		}
		name := part.FormName()
		switch name {
		case "image", "hypothesis", "premise", "model":
		default:
			return nil, invalidArg("POST /predict: unexpected form field '%s' (expected image, hypothesis, premise, model)", name)
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
	for _, f := range []string{"image", "hypothesis"} {
		if _, ok := fields[f]; !ok {
			return nil, invalidArg("POST /predict: form field '%s' is required", f)
		}
	}
	return fields, nil
}

func formError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return invalidArg("POST /predict: the body exceeds the maximum allowed size of %d bytes", tooBig.Limit)
	}
	return invalidArg("POST /predict: reading the multipart body: %v", err)
}
