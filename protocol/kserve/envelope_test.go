package kserve

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
)

// TestEnvelopeDecoding covers what the hand-written envelope decoder must
// agree with encoding/json on (null as absent, unknown members skipped,
// escapes, last duplicate wins) and the errors it words itself.
func TestEnvelopeDecoding(t *testing.T) {
	m := simple()
	one := `"shape":[1],"datatype":"FP32","data":[1.5]`
	for _, tc := range []struct {
		name, body string
		err        string // substring of the error; "" for success
		check      func(t *testing.T, hi *HTTPRequest)
	}{
		{name: "unknown members of every kind skipped",
			body: `{"x":{"a":[1,{"b":"]}"}],"c":null},"y":[[],{}],"inputs":[{"z":"\"{[","name":"IN",` + one + `,"w":true}],"v":-1.5e3}`,
			check: func(t *testing.T, hi *HTTPRequest) {
				in := hi.Request.Inputs[0]
				if in.Name != "IN" || !slices.Equal(in.Shape, []int64{1}) || math.Float32frombits(binary.LittleEndian.Uint32(in.Data)) != 1.5 {
					t.Errorf("decoded %+v", in)
				}
			}},
		{name: "whitespace everywhere",
			body: " {\n\t\"inputs\" : [ { \"name\" : \"IN\" , \"shape\" : [ 2 ] , \"datatype\" : \"INT32\" , \"data\" : [ 1 , 2 ] } ] } \r\n",
			check: func(t *testing.T, hi *HTTPRequest) {
				if !bytes.Equal(hi.Request.Inputs[0].Data, []byte{1, 0, 0, 0, 2, 0, 0, 0}) {
					t.Errorf("data %v", hi.Request.Inputs[0].Data)
				}
			}},
		{name: "escaped and non-ASCII strings",
			body: `{"id":"a\"b\u00e9","inputs":[{"name":"I\u004e","shape":[1],"datatype":"BYTES","data":["é"]}]}`,
			check: func(t *testing.T, hi *HTTPRequest) {
				if hi.Request.ID != "a\"bé" || hi.Request.Inputs[0].Name != "IN" {
					t.Errorf("id %q name %q", hi.Request.ID, hi.Request.Inputs[0].Name)
				}
			}},
		{name: "escaped member names",
			body: `{"\u0069nputs":[{"name":"IN",` + one + `}],"parameters":{"pr\u0069ority":7}}`,
			check: func(t *testing.T, hi *HTTPRequest) {
				if len(hi.Request.Inputs) != 1 || hi.Request.Priority != 7 {
					t.Errorf("inputs %d priority %d", len(hi.Request.Inputs), hi.Request.Priority)
				}
			}},
		{name: "invalid UTF-8 replaced as encoding/json does",
			body: "{\"inputs\":[{\"name\":\"I\xffN\"," + one + "}]}",
			check: func(t *testing.T, hi *HTTPRequest) {
				if hi.Request.Inputs[0].Name != "I\uFFFDN" {
					t.Errorf("name %q", hi.Request.Inputs[0].Name)
				}
			}},
		{name: "null members read as absent",
			body: `{"id":null,"parameters":null,"outputs":null,"inputs":[{"name":"IN",` + one + `,"parameters":null}]}`,
			check: func(t *testing.T, hi *HTTPRequest) {
				if hi.Request.ID != "" || hi.Outputs != nil || len(hi.Request.Inputs) != 1 {
					t.Errorf("%+v", hi)
				}
			}},
		{name: "last duplicate parameter wins",
			body: `{"parameters":{"priority":"x","priority":3,"c":1,"c":"two"},"inputs":[{"name":"IN",` + one + `}]}`,
			check: func(t *testing.T, hi *HTTPRequest) {
				if hi.Request.Priority != 3 || hi.Request.Parameters["c"] != "two" {
					t.Errorf("priority %d params %v", hi.Request.Priority, hi.Request.Parameters)
				}
			}},
		{name: "last duplicate of many parameters wins",
			body: `{"parameters":{` + strings.Repeat(`"timeout":"bad",`, 20) + `"timeout":5},"inputs":[{"name":"IN",` + one + `}]}`,
			check: func(t *testing.T, hi *HTTPRequest) {
				if hi.Request.Timeout.Microseconds() != 5 {
					t.Errorf("timeout %v", hi.Request.Timeout)
				}
			}},
		{name: "last duplicate member wins",
			body: `{"inputs":[{"name":"A"}],"inputs":[{"name":"IN","name":"IN",` + one + `}]}`,
			check: func(t *testing.T, hi *HTTPRequest) {
				if len(hi.Request.Inputs) != 1 || hi.Request.Inputs[0].Name != "IN" {
					t.Errorf("%+v", hi.Request.Inputs)
				}
			}},
		{name: "custom parameter outlives the body",
			body: `{"parameters":{"custom":"v"},"inputs":[{"name":"IN",` + one + `}]}`,
			check: func(t *testing.T, hi *HTTPRequest) {
				if len(hi.Request.Parameters) != 1 || hi.Request.Parameters["custom"] != "v" {
					t.Errorf("parameters %v", hi.Request.Parameters)
				}
			}},
		{name: "top-level null", body: `null`, err: "the request has no inputs"},
		{name: "top-level array", body: `[]`, err: "failed to parse the request JSON buffer: the request must be an object, got an array"},
		{name: "syntax error", body: `{"inputs":[}`, err: "failed to parse the request JSON buffer: invalid character '}'"},
		{name: "trailing bytes", body: `{"inputs":[]} x`, err: "failed to parse the request JSON buffer: invalid character 'x' after top-level value"},
		{name: "empty body", body: ``, err: "failed to parse the request JSON buffer: unexpected end of JSON input"},
		{name: "inputs not an array", body: `{"inputs":{}}`, err: "'inputs' must be an array, got an object"},
		{name: "input not an object", body: `{"inputs":[1]}`, err: "each of 'inputs' must be an object, got a number"},
		{name: "null input", body: `{"inputs":[null]}`, err: "input 0 has no 'name'"},
		{name: "name not a string", body: `{"inputs":[{"name":5}]}`, err: "'name' of an input must be a string, got a number"},
		{name: "datatype not a string", body: `{"inputs":[{"name":"IN","datatype":true}]}`, err: "'datatype' of an input must be a string, got a boolean"},
		{name: "parameters not an object", body: `{"parameters":[],"inputs":[]}`, err: "'parameters' must be an object, got an array"},
		{name: "output not an object", body: `{"inputs":[{"name":"IN",` + one + `}],"outputs":["OUT"]}`, err: "each of 'outputs' must be an object, got a string"},
		{name: "shape not an array", body: `{"inputs":[{"name":"IN","shape":"1"}]}`, err: "unable to parse 'shape': expected an array of non-negative integers"},
		{name: "shape element a string", body: `{"inputs":[{"name":"IN","shape":["1"]}]}`, err: "unable to parse 'shape': expected an array of non-negative integers"},
		{name: "shape element negative", body: `{"inputs":[{"name":"IN","shape":[-1]}]}`, err: "unable to parse 'shape': -1 is not a non-negative integer"},
		{name: "shape element fractional", body: `{"inputs":[{"name":"IN","shape":[1.0]}]}`, err: "unable to parse 'shape': 1.0 is not a non-negative integer"},
		{name: "shape element huge", body: `{"inputs":[{"name":"IN","shape":[9223372036854775808]}]}`, err: "unable to parse 'shape': 9223372036854775808 is not a non-negative integer"},
		{name: "id not a string", body: `{"id":1,"inputs":[]}`, err: "unable to parse 'id': expected a string"},
		{name: "nesting past encoding/json's limit", body: strings.Repeat("[", 10001) + strings.Repeat("]", 10001), err: "exceeded max depth"},
		{name: "null data", body: `{"inputs":[{"name":"IN","shape":[1],"datatype":"FP32","data":null}]}`, err: "But neither was set for input 'IN'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			hi, err := decodeHTTP(body, nil, false, m, 1<<20)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The body is a pooled buffer: nothing decoded may point into it.
			for i := range body {
				body[i] = 'x'
			}
			tc.check(t, hi)
		})
	}
}

// validJSONCases are the edge cases of JSON syntax, valid or not.
var validJSONCases = []string{
	``, ` `, `1`, `-0`, `01`, `1.`, `.5`, `-`, `1e`, `1e+`, `1E-2`, `-1.5e300`, `1x`, `+1`,
	`"`, `"a`, "\"\x01\"", "\"\x7f\xff\"", `"\x"`, `"\u12g4"`, `"\u12"`, `"\uD800"`, `"\/\b\f\n\r\t\"\\"`, `"\`,
	`tru`, `true`, `truex`, `nul`, `null `, `false`, `fals`,
	`{}`, `{ }`, `{"a" 1}`, `{1:2}`, `{"a":1,}`, `{"a":1 "b":2}`, `{"a"}`, `{"a":}`, `{`, `{"a":1`, `{,}`,
	`[]`, `[ ]`, `[1,]`, `[,1]`, `[1 2]`, `[`, `[1`, `[}`, `{]`, `[[]]]`, `[[]`, `[1]x`, `[1] [2]`, "\t\n\r [1] \r\n",
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
}

// TestValidJSON checks validJSON against encoding/json on syntax's edge
// cases (FuzzDecodeJSONInfer goes on from them).
func TestValidJSON(t *testing.T) {
	for _, c := range validJSONCases {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%.40q) = %v, json.Valid says %v", c, got, want)
		}
	}
}
