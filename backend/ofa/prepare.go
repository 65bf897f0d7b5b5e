package ofa

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/preprocess"
	"github.com/ofaserve/ofaserve/preprocess/prompt"
	"github.com/ofaserve/ofaserve/protocol/datatype"
)

func bad(format string, args ...any) error {
	return backend.Errorf(backend.CodeInvalidArg, format, args...)
}

// prepare builds a request's model inputs, every prompt's ids and then every
// image's tensor, refusing the elements this kind cannot use (an image that
// does not decode, text the prompt rejects) with a message that names the
// element. What every model checks the repository has checked already
// (backend.Signature.Validate): IMAGE and HYPOTHESIS are present, every
// input is BYTES of shape [n] or [n,1] with the same 1 <= n <= max batch
// size, and holds n elements. Nothing it refuses reaches the batcher.
func (m *Model) prepare(req *backend.Request) (*prepared, error) {
	var image, hyp, prem *backend.Tensor
	for k := range req.Inputs {
		switch t := &req.Inputs[k]; t.Name {
		case InputImage:
			image = t
		case InputHypothesis:
			hyp = t
		case InputPremise:
			prem = t
		}
	}
	n := 1
	if len(image.Shape) > 0 {
		n = int(image.Shape[0])
	}
	var elems [3][][]byte
	for i, t := range []*backend.Tensor{image, hyp, prem} {
		if t == nil {
			continue
		}
		var err error
		if elems[i], err = splitBytes(t.Data, n); err != nil {
			return nil, bad("input '%s' for model '%s': %v", t.Name, m.name, err)
		}
	}
	p := &prepared{n: n}
	p.outputs = backend.RequestedOutputs(req.Outputs, len(m.outputs), m.outputIndex)

	// Text first: it is cheap and refuses the most common mistakes.
	p.ids = make([][]int64, n)
	for i := range n {
		var premise string
		if prem != nil {
			premise = string(elems[2][i])
		}
		ids, err := m.prompts.Build(premise, string(elems[1][i]))
		if err != nil {
			field := InputHypothesis
			if fe := (*prompt.FieldError)(nil); errors.As(err, &fe) && fe.Field == "premise" {
				field = InputPremise
			}
			return nil, bad("%s[%d]: %v", field, i, err)
		}
		p.ids[i] = ids
	}

	p.images = m.imageBuffer(n)
	for i := range n {
		data, scratch, err := m.imageBytes(elems[0][i])
		if err == nil {
			m.decodes.Add(1)
			_, err = preprocess.PrepareUint8(data, m.popts, (*p.images)[i*m.chw:(i+1)*m.chw])
		}
		if scratch != nil {
			m.decoded.Put(scratch)
		}
		if err != nil {
			m.images.Put(p.images)
			return nil, bad("%s[%d]: %v", InputImage, i, err)
		}
	}
	return p, nil
}

// outputIndex returns the config index of the output named name.
func (m *Model) outputIndex(name string) (int, bool) {
	for i := range m.outputs {
		if m.outputs[i].name == name {
			return i, true
		}
	}
	return 0, false
}

// imageBuffer returns a pooled buffer for n images.
func (m *Model) imageBuffer(n int) *[]uint8 {
	size := n * m.chw
	if b, ok := m.images.Get().(*[]uint8); ok && cap(*b) >= size {
		*b = (*b)[:size]
		return b
	}
	b := make([]uint8, size, max(size, m.chw))
	return &b
}

// releaseImages returns a request's image buffer to the pool.
func (m *Model) releaseImages(p *prepared) {
	if p.images != nil {
		m.images.Put(p.images)
		p.images = nil
	}
}

// splitBytes splits a BYTES tensor's data (4-byte little-endian length,
// then the bytes, per element) into exactly n elements, without copying.
// (Validation has counted them; the check guards the indexing that follows.)
func splitBytes(data []byte, n int) ([][]byte, error) {
	out := make([][]byte, 0, n)
	for e, err := range datatype.Elements(data) {
		if err != nil {
			return nil, err
		}
		if len(out) == n {
			return nil, fmt.Errorf("holds more than the %d elements its shape declares", n)
		}
		out = append(out, e)
	}
	if len(out) != n {
		return nil, fmt.Errorf("holds %d elements but its shape declares %d", len(out), n)
	}
	return out, nil
}

// imageBytes applies the IMAGE rule (see the package doc): base64 text is
// decoded, anything else is the file itself. scratch, when not nil, is a
// pooled buffer holding the decoded bytes, to be returned to m.decoded once
// data is no longer used.
func (m *Model) imageBytes(elem []byte) (data []byte, scratch *[]byte, err error) {
	text, ok := base64Text(elem)
	if !ok {
		return elem, nil, nil
	}
	scratch, _ = m.decoded.Get().(*[]byte)
	if scratch == nil {
		scratch = new([]byte)
	}
	data, err = decodeBase64(text, scratch)
	if err != nil {
		return nil, scratch, err
	}
	return data, scratch, nil
}

// base64Text reports whether elem is base64 text, and returns it without
// surrounding whitespace and without a "data:...;base64," prefix.
func base64Text(elem []byte) ([]byte, bool) {
	b := trimSpace(elem)
	if len(b) >= 5 && strings.EqualFold(string(b[:5]), "data:") {
		i := strings.Index(string(b), ";base64,")
		if i < 0 {
			return nil, false
		}
		b = b[i+len(";base64,"):]
	}
	if len(b) == 0 {
		return nil, false
	}
	for _, c := range b {
		if !isBase64Char(c) && !isSpace(c) {
			return nil, false
		}
	}
	return b, true
}

func isBase64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '+' || c == '/' || c == '-' || c == '_' || c == '='
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// decodeBase64 decodes standard or URL-safe base64 text, padded or not,
// with whitespace anywhere, into buf (grown as needed).
func decodeBase64(text []byte, buf *[]byte) ([]byte, error) {
	// Compact: drop whitespace and the trailing padding.
	need := len(text) + base64.RawStdEncoding.DecodedLen(len(text))
	if cap(*buf) < need {
		*buf = make([]byte, need)
	}
	b := (*buf)[:need]
	clean := b[:0]
	urlSafe := false
	for _, c := range text {
		switch {
		case isSpace(c):
			continue
		case c == '-' || c == '_':
			urlSafe = true
		}
		clean = append(clean, c)
	}
	for len(clean) > 0 && clean[len(clean)-1] == '=' {
		clean = clean[:len(clean)-1]
	}
	enc := base64.RawStdEncoding
	if urlSafe {
		enc = base64.RawURLEncoding
	}
	dst := b[len(text):]
	n, err := enc.Decode(dst, clean)
	if err != nil {
		return nil, fmt.Errorf("image: the element is base64 text but does not decode: %w", err)
	}
	return dst[:n], nil
}
