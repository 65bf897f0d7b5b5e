package kserve

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
)

// FuzzDecodeJSONInfer feeds arbitrary bytes to the JSON request decoder and
// to the validation behind it: it may refuse them, never panic, and what it
// accepts must have data sizes that agree with shapes and datatypes.
func FuzzDecodeJSONInfer(f *testing.F) {
	f.Add([]byte(simpleReq))
	f.Add([]byte(`{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"BYTES","data":["a\"\\u00e9"]}]}`))
	f.Add([]byte(`{"inputs":[{"name":"INPUT0","shape":[2,2],"datatype":"BOOL","data":[[true,false],[false,true]]}]}`))
	f.Add([]byte(`{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","data":` + strings.Repeat("[", 99) + "1" + strings.Repeat("]", 99) + `}]}`))
	f.Add([]byte(`{"parameters":{"priority":1,"timeout":10,"binary_data_output":true,"x":1.5},"inputs":[{"name":"I","shape":[0],"datatype":"UINT64","data":[]}],"outputs":[{"name":"O","parameters":{"classification":3,"binary_data":true}}]}`))
	f.Add([]byte(`{"inputs":[{"name":"INPUT0","shape":[18446744073709551615,2],"datatype":"INT8","data":[1,-1e5]}]}`))
	m := simple()
	f.Add([]byte(`{"a":[1,-0.5e+3,true,false,null,"\u00e9\n",{},[],{"b":{}}],"c":-0,"d":1E2} `))
	for _, bad := range validJSONCases {
		f.Add([]byte(bad))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if got, want := validJSON(body), json.Valid(body); got != want {
			t.Fatalf("validJSON %v, json.Valid %v", got, want)
		}
		hi, err := decodeHTTP(body, nil, false, m, 1<<20)
		if err != nil {
			return
		}
		for _, in := range hi.Request.Inputs {
			d := datatype.Parse(in.Datatype)
			n, variable, ok := datatype.ElementCount(in.Shape)
			if !ok || variable > 0 {
				t.Fatalf("accepted an overflowing shape %v", in.Shape)
			}
			if d == datatype.Bytes {
				if c, err := datatype.Split(in.Data); err != nil || int64(len(c)) != n {
					t.Fatalf("BYTES input %q: %d well-formed elements for shape %v", in.Name, c, in.Shape)
				}
			} else if int64(len(in.Data)) != n*int64(d.Size()) {
				t.Fatalf("input %q: %d bytes for %v %s", in.Name, len(in.Data), in.Shape, d)
			}
		}
		validate(m, &hi.Request, hi.Outputs)
	})
}

// FuzzBinaryFraming feeds arbitrary header lengths and bodies to the
// binary-extension framing (Inference-Header-Content-Length, raw requests).
func FuzzBinaryFraming(f *testing.F) {
	hdr := `{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","parameters":{"binary_data_size":64}}],"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}}]}`
	f.Add(hdr, append([]byte(hdr), make([]byte, 64)...), "identity_fp32")
	f.Add("0", make([]byte, 64), "identity_fp32")
	f.Add("0", []byte("427"), "strings")
	f.Add("0", make([]byte, 12), "multi")
	f.Add("-5", []byte("{}"), "simple")
	f.Add("99999999999", []byte("{}"), "simple")
	f.Add("2", []byte(`{}junk`), "simple")
	f.Fuzz(func(t *testing.T, hl string, body []byte, model string) {
		if hl != "0" && len(hl) > 0 && hl[0] == '{' {
			hl = "0"
		}
		m := signatures[model]
		if m == nil {
			m = signatures["identity_fp32"]
		}
		hi, err := DecodeHTTP(m, hl, body, 1<<20)
		if err != nil {
			return
		}
		total := 0
		for _, in := range hi.Request.Inputs {
			total += len(in.Data)
		}
		if hl == "0" && datatype.Parse(hi.Request.Inputs[0].Datatype) != datatype.Bytes && total != len(body) {
			t.Fatalf("raw request: %d data bytes from a %d-byte body", total, len(body))
		}
		validate(m, &hi.Request, hi.Outputs)
	})
}

// validate runs the model's validation on a decoded request, with its
// requested outputs, as the server hands it over: it may refuse it, never
// panic.
func validate(sig *backend.Signature, req *backend.Request, outs []Output) {
	for _, o := range outs {
		req.Outputs = append(req.Outputs, o.Name)
	}
	_ = sig.Validate(req)
}
