package ocrofa_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"sync"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/protocol/datatype"
)

// The OCR stand-in. It is not OCR and is registered only in these tests
// (docs/examples/ocr_then_ofa/ocr/config.pbtxt says so where an operator
// looks): backend "ocr_standin" answers each IMAGE element with the text
// its PNG file carries in a tEXt chunk with keyword "Text", which the tests
// write when they make the image, and refuses an image that carries none.
// It gives the pipeline a first step that produces BYTES text from the
// image, deterministically, so the ensemble around it can be tested.

const standinKind = "ocr_standin"

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

func loadStandin(context.Context, backend.LoadSpec) (backend.Model, error) {
	s := &standin{}
	s.stats.Failures = map[batcher.FailReason]uint64{}
	s.stats.Batches = map[int]batcher.BatchStats{}
	return s, nil
}

type standin struct {
	mu    sync.Mutex
	stats batcher.Stats
}

func (s *standin) Infer(_ context.Context, req *backend.Request) (*backend.Response, error) {
	start := time.Now()
	var out []byte
	n := 0
	for elem, err := range datatype.Elements(req.Inputs[0].Data) {
		if err != nil {
			return nil, backend.Errorf(backend.CodeInvalidArg, "ocr_standin: IMAGE: %v", err)
		}
		text, ok := pngText(elem)
		if !ok {
			s.count(start, 0, false)
			return nil, backend.Errorf(backend.CodeInvalidArg, "ocr_standin: IMAGE[%d]: the image holds no text", n)
		}
		out = datatype.AppendElement(out, text)
		n++
	}
	s.count(start, n, true)
	return &backend.Response{Outputs: []backend.Tensor{{Name: "TEXT", Datatype: "BYTES", Shape: []int64{int64(n), 1}, Data: out}}}, nil
}

func (s *standin) count(start time.Time, units int, ok bool) {
	d := time.Since(start)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		s.stats.Fail.Count++
		s.stats.Fail.Total += d
		s.stats.Failures[batcher.FailBackend]++
		return
	}
	s.stats.Success.Count++
	s.stats.Success.Total += d
	s.stats.InferenceCount += uint64(units)
	s.stats.ExecutionCount++
}

func (s *standin) Close(context.Context) error { return nil }

func (s *standin) Stats() batcher.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// pngText returns the "Text" tEXt chunk of a PNG file, given as its bytes
// or as base64 text (what JSON clients send).
func pngText(elem []byte) ([]byte, bool) {
	if !bytes.HasPrefix(elem, pngMagic) {
		dec, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(elem)))
		if err != nil {
			return nil, false
		}
		elem = dec
	}
	if !bytes.HasPrefix(elem, pngMagic) {
		return nil, false
	}
	for p := elem[len(pngMagic):]; len(p) >= 12; {
		n := int(binary.BigEndian.Uint32(p))
		if n < 0 || 12+n > len(p) {
			return nil, false
		}
		if typ, data := string(p[4:8]), p[8:8+n]; typ == "tEXt" {
			if key, text, ok := bytes.Cut(data, []byte{0}); ok && string(key) == "Text" {
				return text, true
			}
		}
		p = p[12+n:]
	}
	return nil, false
}

// photo makes a small PNG (a colour gradient seeded by seed) that carries
// text in a tEXt chunk, or no text when text is "".
func photo(seed int, text string) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 48, 40))
	for y := range 40 {
		for x := range 48 {
			img.Set(x, y, color.RGBA{uint8(x*5 + seed*40), uint8(y*6 + seed*13), uint8((x + y + seed) * 3), 255})
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img) // an RGBA image into memory: nothing can fail
	b := buf.Bytes()
	if text == "" {
		return b
	}
	data := append([]byte("Text\x00"), text...)
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	chunk = append(chunk, "tEXt"...)
	chunk = append(chunk, data...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	iend := len(b) - 12 // the IEND chunk closes the file
	return append(append(append([]byte{}, b[:iend]...), chunk...), b[iend:]...)
}
