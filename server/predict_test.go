package server

import (
	"bytes"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
)

// entailForm is a /predict configuration like the one main builds from the
// ofa kind's constants.
var entailForm = &Predict{
	Model: "entail",
	Fields: []PredictField{
		{Name: "image", Input: "IMAGE", Required: true, File: true},
		{Name: "hypothesis", Input: "HYPOTHESIS", Required: true},
		{Name: "premise", Input: "PREMISE"},
	},
	Output: "RESULT",
}

// entailModel answers RESULT = "<image>|<hypothesis>|<premise>" (premise
// empty when absent), as BYTES [n,1].
func entailModel() *fakeModel {
	str := func(name string, optional bool) backend.TensorSpec {
		return backend.TensorSpec{Name: name, Datatype: "BYTES", Dims: []int64{1}, Optional: optional}
	}
	m := &fakeModel{name: "entail", version: 1, mbs: 4,
		inputs:  []backend.TensorSpec{str("IMAGE", false), str("HYPOTHESIS", false), str("PREMISE", true)},
		outputs: []backend.TensorSpec{str("RESULT", false)}}
	m.infer = func(req *backend.Request) (*backend.Response, error) {
		got := map[string]string{}
		for _, in := range req.Inputs {
			e, err := datatype.Split(in.Data)
			if err != nil || len(e) != 1 {
				return nil, backend.Errorf(backend.CodeInternal, "input %s: %d elements, %v", in.Name, len(e), err)
			}
			got[in.Name] = string(e[0])
		}
		result := got["IMAGE"] + "|" + got["HYPOTHESIS"] + "|" + got["PREMISE"]
		return &backend.Response{Outputs: []backend.Tensor{{Name: "RESULT", Datatype: "BYTES", Shape: []int64{1, 1},
			Data: datatype.AppendElement(nil, []byte(result))}}}, nil
	}
	return m
}

func form(t *testing.T, fields ...string) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for i := 0; i+1 < len(fields); i += 2 {
		if err := w.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), w.FormDataContentType()
}

func TestPredict(t *testing.T) {
	repo := testRepo()
	repo.add(entailModel())
	h := newTestServer(t, repo, Options{Predict: entailForm}).HTTPHandler()
	post := func(body []byte, ctype string) httpResult {
		return do(t, h, "POST", "/predict", body, "Content-Type", ctype)
	}
	body, ct := form(t, "image", "PNG", "hypothesis", "a dog", "premise", "a photo")
	if r := post(body, ct); r.code != 200 || string(r.body) != "PNG|a dog|a photo" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("full form: %d %q %s", r.code, r.body, r.header.Get("Content-Type"))
	}
	body, ct = form(t, "hypothesis", "a cat", "image", "JPG")
	if r := post(body, ct); r.code != 200 || string(r.body) != "JPG|a cat|" {
		t.Errorf("form without premise: %d %q", r.code, r.body)
	}
	for _, c := range []struct {
		name   string
		fields []string
		ctype  string
		code   int
		msg    string
	}{
		{"not multipart", nil, "application/json", 400,
			"POST /predict expects a multipart/form-data body with the fields image (a file), hypothesis, and optionally premise and model: "},
		{"unknown field", []string{"image", "x", "caption", "y"}, "", 400,
			"POST /predict: unexpected form field 'caption' (expected image, hypothesis, premise, model)"},
		{"repeated field", []string{"image", "x", "image", "y"}, "", 400, "POST /predict: form field 'image' is given twice"},
		{"missing hypothesis", []string{"image", "x"}, "", 400, "POST /predict: form field 'hypothesis' is required"},
		{"missing image", []string{"hypothesis", "x"}, "", 400, "POST /predict: form field 'image' is required"},
		{"unknown model", []string{"image", "x", "hypothesis", "y", "model", "nope"}, "", 404, "Request for unknown model: 'nope' is not found"},
		{"model without those inputs", []string{"image", "x", "hypothesis", "y", "model", "simple"}, "", 400,
			"unexpected inference input 'IMAGE' for model 'simple'"},
	} {
		body, ct := form(t, c.fields...)
		if c.ctype != "" {
			ct = c.ctype
		}
		r := post(body, ct)
		if r.code != c.code || !strings.Contains(r.errMsg(t), c.msg) {
			t.Errorf("%s: %d %s, want %d %q", c.name, r.code, r.body, c.code, c.msg)
		}
	}
	// Without a configuration the endpoint is not there.
	h = newTestServer(t, repo, Options{}).HTTPHandler()
	body, ct = form(t, "image", "PNG", "hypothesis", "a dog")
	if r := do(t, h, "POST", "/predict", body, "Content-Type", ct); r.code != 404 {
		t.Errorf("unconfigured /predict: %d %s", r.code, r.body)
	}
}
