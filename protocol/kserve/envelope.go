package kserve

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/ofaserve/ofaserve/backend"
)

// The inference request envelope (docs/triton-batcher-and-kserve-v2.md §2.3) is decoded by hand: with
// encoding/json, reflection and the maps for "parameters" were most of the
// server's CPU and allocations per HTTP request. validJSON checks the
// syntax first, as json.Valid would (malformed JSON is refused with
// encoding/json's message, nesting past 10000 levels is refused), and
// envScanner then walks the known-valid bytes once, keeping the
// values it does not interpret ("id", parameter values, "data") as raw
// sub-slices of the body.
//
// Semantics follow encoding/json's where they used to apply: null stands
// for an absent value; unknown members are ignored; of duplicate members
// the last wins. Member names match exactly (as in Triton), where
// encoding/json also matched other letter cases.

// jsonRequest is the envelope of a KServe v2 inference request. Its
// strings may point into the body: decodeHTTPInfer copies what it keeps.
type jsonRequest struct {
	ID         []byte // raw JSON value; nil when absent
	Parameters []jsonParam
	Inputs     []jsonInput
	Outputs    []jsonOutput
	// params holds the parameters of the request, its inputs and outputs;
	// dims their shapes.
	params []jsonParam
	dims   []int64
}

// envelopePool recycles envelopes with their slices: all they hold is
// dropped when one comes back.
var envelopePool = sync.Pool{New: func() any { return new(jsonRequest) }}

func getEnvelope() *jsonRequest { return envelopePool.Get().(*jsonRequest) }

func putEnvelope(jr *jsonRequest) {
	if cap(jr.Inputs) > 64 || cap(jr.Outputs) > 64 || cap(jr.params) > 64 || cap(jr.dims) > 256 {
		return // do not pin what one odd request grew
	}
	clear(jr.Inputs[:cap(jr.Inputs)])
	clear(jr.Outputs[:cap(jr.Outputs)])
	clear(jr.params[:cap(jr.params)])
	*jr = jsonRequest{Inputs: jr.Inputs[:0], Outputs: jr.Outputs[:0], params: jr.params[:0], dims: jr.dims[:0]}
	envelopePool.Put(jr)
}

// internName returns a copy of name, which points into the body: the
// tensor spec's own string where one has that name.
func internName(name string, specs []backend.TensorSpec) string {
	for i := range specs {
		if specs[i].Name == name {
			return specs[i].Name
		}
	}
	return strings.Clone(name)
}

// jsonParam is one member of a "parameters" object: its key (pointing into
// the body unless it had escapes) and its raw JSON value.
type jsonParam struct {
	key string
	val []byte
}

type jsonInput struct {
	Name       string
	Shape      []int64
	Datatype   string
	Parameters []jsonParam
	Data       []byte // raw JSON value; nil when absent or null
}

type jsonOutput struct {
	Name       string
	Parameters []jsonParam
}

// parseEnvelope decodes an inference request header into jr.
func parseEnvelope(b []byte, jr *jsonRequest) error {
	if !validJSON(b) {
		// encoding/json words the syntax error (offset and character).
		var v any
		err := json.Unmarshal(b, &v)
		if err == nil { // unreachable: FuzzDecodeJSONInfer checks validJSON against encoding/json
			err = errInvalidJSON
		}
		return invalidArg("failed to parse the request JSON buffer: %v", err)
	}
	s := envScanner{b: b, jr: jr}
	ok, err := s.open('{', "the request")
	if err != nil || !ok {
		return err
	}
	for first := true; s.more(&first, '}'); {
		switch s.key() {
		case "id":
			jr.ID = s.value()
		case "parameters":
			if jr.Parameters, err = s.params(); err != nil {
				return err
			}
		case "inputs":
			jr.Inputs = jr.Inputs[:0]
			ok, err := s.open('[', "'inputs'")
			if err != nil {
				return err
			}
			for first := ok; ok && s.more(&first, ']'); {
				jr.Inputs = append(jr.Inputs, jsonInput{})
				if err := s.input(&jr.Inputs[len(jr.Inputs)-1]); err != nil {
					return err
				}
			}
		case "outputs":
			jr.Outputs = jr.Outputs[:0]
			ok, err := s.open('[', "'outputs'")
			if err != nil {
				return err
			}
			for first := ok; ok && s.more(&first, ']'); {
				jr.Outputs = append(jr.Outputs, jsonOutput{})
				if err := s.output(&jr.Outputs[len(jr.Outputs)-1]); err != nil {
					return err
				}
			}
		default:
			s.value()
		}
	}
	return nil
}

const errInvalidJSON = constErr("invalid JSON")

// envScanner walks JSON that json.Valid has accepted.
type envScanner struct {
	b  []byte
	p  int
	jr *jsonRequest // whose params arena parameters go to
}

func (s *envScanner) ws() {
	for s.p < len(s.b) {
		switch s.b[s.p] {
		case ' ', '\t', '\n', '\r':
			s.p++
		default:
			return
		}
	}
}

// open consumes the opening bracket c of an object or array and returns
// true, consumes a null and returns false, or refuses any other value as
// not being what was named.
func (s *envScanner) open(c byte, what string) (bool, error) {
	s.ws()
	switch s.b[s.p] {
	case c:
		s.p++
		return true, nil
	case 'n':
		s.p += 4
		return false, nil
	}
	kind := "an object"
	if c == '[' {
		kind = "an array"
	}
	return false, invalidArg("failed to parse the request JSON buffer: %s must be %s, got %s", what, kind, jsonKindOf(s.b[s.p]))
}

// more reports whether another member or element follows in the object or
// array being read, consuming the comma before it, or consumes the closing
// bracket and reports false.
func (s *envScanner) more(first *bool, closing byte) bool {
	s.ws()
	if s.b[s.p] == closing {
		s.p++
		return false
	}
	if !*first {
		s.p++ // ','
	}
	*first = false
	return true
}

// key reads a member name and the colon after it. The name points into the
// body unless it holds escapes or bytes that are not UTF-8.
func (s *envScanner) key() string {
	s.ws()
	k := s.str(false)
	s.ws()
	s.p++ // ':'
	return k
}

// str reads the string literal at s.p. With keep, the result never points
// into the body.
func (s *envScanner) str(keep bool) string {
	start := s.p
	s.p++
	plain := true
	for {
		c := s.b[s.p]
		if c == '"' {
			break
		}
		if c == '\\' {
			plain = false
			s.p += 2
			continue
		}
		if c >= utf8.RuneSelf {
			plain = false
		}
		s.p++
	}
	s.p++
	raw := s.b[start+1 : s.p-1]
	if plain || utf8.Valid(raw) && !hasBackslash(raw) {
		if keep {
			return string(raw)
		}
		return unsafe.String(unsafe.SliceData(raw), len(raw))
	}
	var out string
	_ = json.Unmarshal(s.b[start:s.p], &out) // valid: escapes and bad UTF-8 as encoding/json decodes them
	return out
}

func hasBackslash(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

// value skips one value and returns its bytes.
func (s *envScanner) value() []byte {
	s.ws()
	start := s.p
	switch s.b[s.p] {
	case '"':
		s.skipString()
	case '{', '[':
		depth := 0
		for {
			switch s.b[s.p] {
			case '"':
				s.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.p++
			if depth == 0 {
				break
			}
		}
	default:
		for s.p < len(s.b) {
			switch s.b[s.p] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return s.b[start:s.p]
			}
			s.p++
		}
	}
	return s.b[start:s.p]
}

func (s *envScanner) skipString() {
	s.p++
	for {
		switch s.b[s.p] {
		case '"':
			s.p++
			return
		case '\\':
			s.p += 2
		default:
			s.p++
		}
	}
}

// stringValue reads a string member; null reads as "". Unless keep, the
// result may point into the body.
func (s *envScanner) stringValue(what string, keep bool) (string, error) {
	s.ws()
	switch s.b[s.p] {
	case '"':
		return s.str(keep), nil
	case 'n':
		s.p += 4
		return "", nil
	}
	return "", invalidArg("failed to parse the request JSON buffer: %s must be a string, got %s", what, jsonKindOf(s.b[s.p]))
}

// params reads a "parameters" object (null reads as none); of duplicate
// keys the last wins.
func (s *envScanner) params() ([]jsonParam, error) {
	ok, err := s.open('{', "'parameters'")
	if err != nil || !ok {
		return nil, err
	}
	start := len(s.jr.params)
	for first := true; s.more(&first, '}'); {
		k := s.key()
		s.jr.params = append(s.jr.params, jsonParam{key: k, val: s.value()})
	}
	ps := s.jr.params[start:len(s.jr.params):len(s.jr.params)]
	return lastOccurrences(ps), nil
}

// lastOccurrences drops the parameters that a later one of the same key
// overrides, keeping the order of the rest.
func lastOccurrences(ps []jsonParam) []jsonParam {
	if len(ps) < 2 {
		return ps
	}
	out := ps[:0]
	if len(ps) <= 16 {
	next:
		for i, p := range ps {
			for _, q := range ps[i+1:] {
				if q.key == p.key {
					continue next
				}
			}
			out = append(out, p)
		}
		return out
	}
	last := make(map[string]int, len(ps))
	for i, p := range ps {
		last[p.key] = i
	}
	for i, p := range ps {
		if last[p.key] == i {
			out = append(out, p)
		}
	}
	return out
}

func (s *envScanner) input(in *jsonInput) error {
	ok, err := s.open('{', "each of 'inputs'")
	if err != nil || !ok {
		return err
	}
	for first := true; s.more(&first, '}'); {
		switch s.key() {
		case "name":
			if in.Name, err = s.stringValue("'name' of an input", false); err != nil {
				return err
			}
		case "datatype":
			if in.Datatype, err = s.stringValue("'datatype' of an input", false); err != nil {
				return err
			}
		case "shape":
			if in.Shape, err = s.shape(); err != nil {
				return err
			}
		case "parameters":
			if in.Parameters, err = s.params(); err != nil {
				return err
			}
		case "data":
			in.Data = s.value()
			if string(in.Data) == "null" {
				in.Data = nil
			}
		default:
			s.value()
		}
	}
	return nil
}

func (s *envScanner) output(o *jsonOutput) error {
	ok, err := s.open('{', "each of 'outputs'")
	if err != nil || !ok {
		return err
	}
	for first := true; s.more(&first, '}'); {
		switch s.key() {
		case "name":
			if o.Name, err = s.stringValue("'name' of an output", false); err != nil {
				return err
			}
		case "parameters":
			if o.Parameters, err = s.params(); err != nil {
				return err
			}
		default:
			s.value()
		}
	}
	return nil
}

// shape reads a shape: an array of non-negative integers (null reads as
// no shape), kept in the envelope's dims.
func (s *envScanner) shape() ([]int64, error) {
	s.ws()
	if s.b[s.p] != '[' {
		if s.b[s.p] == 'n' {
			s.p += 4
			return nil, nil
		}
		s.value()
		return nil, invalidArg("unable to parse 'shape': expected an array of non-negative integers")
	}
	s.p++
	start := len(s.jr.dims)
	for first := true; s.more(&first, ']'); {
		s.ws()
		if c := s.b[s.p]; c != '-' && (c < '0' || c > '9') {
			return nil, invalidArg("unable to parse 'shape': expected an array of non-negative integers")
		}
		tok := s.value()
		v, err := strconv.ParseInt(unsafe.String(unsafe.SliceData(tok), len(tok)), 10, 64)
		if err != nil || v < 0 {
			return nil, invalidArg("unable to parse 'shape': %s is not a non-negative integer", tok)
		}
		s.jr.dims = append(s.jr.dims, v)
	}
	return s.jr.dims[start:len(s.jr.dims):len(s.jr.dims)], nil
}

// jsonKindOf names the kind of JSON value that starts with c.
func jsonKindOf(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
