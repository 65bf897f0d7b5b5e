package chaos

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ofaserve/ofaserve/bench/kserve"
)

// ImageRequest is a one-item visual-entailment request for the image model
// (IMAGE and HYPOTHESIS, shape [n,1]), every item the same image.
func ImageRequest(model string, img []byte, hyp string, n int) kserve.Request {
	shape := []int64{int64(n), 1}
	im := kserve.Tensor{Name: "IMAGE", Datatype: "BYTES", Shape: shape, Base64JSON: true}
	hy := kserve.Tensor{Name: "HYPOTHESIS", Datatype: "BYTES", Shape: shape}
	for range n {
		im.Elems = append(im.Elems, img)
		hy.Elems = append(hy.Elems, []byte(hyp))
	}
	return kserve.Request{Model: model, Inputs: []kserve.Tensor{im, hy}}
}

// goodImageRequests builds a few distinct good requests for the image model,
// encoded with the binary extension.
func goodImageRequests(model string) ([]Encoded, error) {
	hyps := []string{"there are two birds.", "a man is riding a bicycle down the street.", "two dogs are playing in the snow.", "a woman holds an umbrella in the rain."}
	var out []Encoded
	for k, h := range hyps {
		img, err := PhotoJPEG(320, 240, k)
		if err != nil {
			return nil, err
		}
		e, err := Encode(ImageRequest(model, img, h, 1), true)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// rawShape reads the IMAGE dims (C, H, W) of the raw model from its metadata.
func (e *Env) rawShape(ctx context.Context) ([]int64, error) {
	c := kserve.NewHTTPClient(e.Base, 1, 0)
	defer c.Close()
	m, err := c.Metadata(ctx, e.RawModel, "")
	if err != nil {
		return nil, err
	}
	for _, in := range m.Inputs {
		if in.Name == "IMAGE" && len(in.Shape) == 4 {
			return in.Shape[1:], nil
		}
	}
	return nil, fmt.Errorf("model %s has no IMAGE input of rank 4 (batch, C, H, W) in its metadata", e.RawModel)
}

// RawRequest is a one-item request for the raw model: a seeded random image
// of shape [1, C, H, W] and the given token ids.
func RawRequest(model string, chw []int64, seed uint64, ids []int64) kserve.Request {
	n := chw[0] * chw[1] * chw[2]
	rng := rand.New(rand.NewPCG(seed, 0xc4a05))
	img := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(img[4*i:], math.Float32bits(rng.Float32()))
	}
	tok := make([]byte, 8*len(ids))
	for i, v := range ids {
		binary.LittleEndian.PutUint64(tok[8*i:], uint64(v))
	}
	return kserve.Request{Model: model, Inputs: []kserve.Tensor{
		{Name: "IMAGE", Datatype: "FP32", Shape: append([]int64{1}, chw...), Data: img},
		{Name: "INPUT_IDS", Datatype: "INT64", Shape: []int64{1, int64(len(ids))}, Data: tok},
	}}
}

// TokenIDs returns n valid token ids: BOS (0), n-2 ids in [4, 1000), EOS (2).
func TokenIDs(seed uint64, n int) []int64 {
	rng := rand.New(rand.NewPCG(seed, 7))
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = 4 + rng.Int64N(996)
	}
	ids[0], ids[n-1] = 0, 2
	return ids
}

// BadIDs are the three faults of issue 15 item 2: an id far past the
// vocabulary, a negative id, and a sequence longer than the model's
// positions.
func BadIDs(kind int, seed uint64) ([]int64, string) {
	switch kind % 3 {
	case 0:
		ids := TokenIDs(seed, 16)
		ids[5] = 1_000_000_000
		return ids, "id 1e9"
	case 1:
		ids := TokenIDs(seed, 16)
		ids[5] = -5
		return ids, "id -5"
	default:
		return TokenIDs(seed, 2000), "length 2000"
	}
}
