package ofa

import (
	"fmt"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/preprocess"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// The pixel budget: how much image a request may ask this model to decode. The model sees h×w pixels; a
// photo many times that size still resizes to the same input, but an image of 8000×8000 costs a second of
// CPU and 190 MB to decode for a 64 px model. So the budget follows the model, not the file format's limit:
// 64 times its input area, and never less than minImagePixels (a phone photo), per image; the per-image
// budget times max_batch_size per request. Both are read from the image headers (preprocess.Probe) before
// the request is admitted to the queue, so a refusal costs microseconds, and the per-image budget is the
// decode's own limit as well (preprocess.Limits.MaxPixels).
const (
	pixelBudgetFactor = 64
	minImagePixels    = 12_000_000
	// probePrefix is how much of a base64 element is decoded to read the header: enough for a JPEG's
	// EXIF and tables. A header beyond it is left to the decode's own limit check.
	probePrefix = 96 << 10
)

// pixelBudget holds the two limits; a value <= 0 means no limit.
type pixelBudget struct {
	image, request int64
}

// readPixelBudget applies the parameters max_image_pixels and max_request_pixels over the defaults for a
// model of input h×w and batches of maxBatch.
func readPixelBudget(params map[string]*modelconfig.ModelParameter, h, w, maxBatch int) (pixelBudget, error) {
	b := pixelBudget{image: max(pixelBudgetFactor*int64(h)*int64(w), minImagePixels)}
	if v, ok, err := intParam(params, "max_image_pixels"); err != nil {
		return b, err
	} else if ok {
		b.image = v
	}
	b.request = b.image * int64(max(1, maxBatch))
	if b.image <= 0 {
		b.request = 0
	}
	if v, ok, err := intParam(params, "max_request_pixels"); err != nil {
		return b, err
	} else if ok {
		b.request = v
	}
	return b, nil
}

// checkPixels refuses a request whose images' headers say more than the budget allows, before anything of
// it is decoded. An element whose header cannot be read here (not an image, a header past probePrefix) is
// left to prepare, whose decode checks the per-image budget from the full header and names the fault.
func (m *Model) checkPixels(req *backend.Request) error {
	if m.budget.image <= 0 && m.budget.request <= 0 {
		return nil
	}
	var image *backend.Tensor
	for k := range req.Inputs {
		if req.Inputs[k].Name == InputImage {
			image = &req.Inputs[k]
		}
	}
	if image == nil {
		return nil
	}
	n := 1
	if len(image.Shape) > 0 {
		n = int(image.Shape[0])
	}
	elems, err := splitBytes(image.Data, n)
	if err != nil {
		return bad("input '%s' for model '%s': %v", image.Name, m.name, err)
	}
	var scratch []byte
	var total int64
	for i, e := range elems {
		head := e
		if text, ok := base64Text(e); ok {
			if head, err = decodeBase64Prefix(text, probePrefix, &scratch); err != nil {
				continue // prepare names it
			}
		}
		s, err := preprocess.Probe(head)
		if err != nil {
			continue
		}
		px := s.Pixels()
		if m.budget.image > 0 && px > m.budget.image {
			return bad("%s[%d]: %v: %dx%d exceeds the limit of %d pixels per image of model '%s' (parameter max_image_pixels), read from its %s header",
				InputImage, i, preprocess.ErrTooLarge, s.Width, s.Height, m.budget.image, m.name, s.Format)
		}
		total += px
	}
	if m.budget.request > 0 && total > m.budget.request {
		return bad("%s: %v: the request's %d images hold %d pixels, over the limit of %d pixels per request of model '%s' (parameter max_request_pixels)",
			InputImage, preprocess.ErrTooLarge, n, total, m.budget.request, m.name)
	}
	return nil
}

// decodeBase64Prefix decodes at most the first limit significant characters of base64 text (whitespace
// skipped, cut to whole 4-character groups), for reading a header.
func decodeBase64Prefix(text []byte, limit int, buf *[]byte) ([]byte, error) {
	clean := make([]byte, 0, min(len(text), limit))
	for _, c := range text {
		if len(clean) == limit {
			break
		}
		if !isSpace(c) {
			clean = append(clean, c)
		}
	}
	if len(clean) < len(text) {
		clean = clean[:len(clean)/4*4]
	}
	if len(clean) == 0 {
		return nil, fmt.Errorf("no base64 data")
	}
	return decodeBase64(clean, buf)
}
