package preprocess

import "sync"

// Options configure Prepare.
type Options struct {
	Width, Height int       // the model's input size (e.g. 480×480 for OFA-large)
	Norm          Normalize // e.g. OFANormalize
	Limits        Limits    // applied to the encoded input
}

// buffers are reused across Prepare calls; each call takes one set.
type buffers struct {
	s   scratch
	tmp []uint8
	acc []int32
}

var bufferPool = sync.Pool{New: func() any { return new(buffers) }}

// maxPooled is the largest buffer kept for reuse (a 2048×2048 RGB photo);
// bigger ones, from rare huge inputs, are left to the garbage collector.
const maxPooled = 3 * 2048 * 2048

func (b *buffers) release() {
	for _, p := range []*[]uint8{&b.s.a, &b.s.b, &b.s.c, &b.s.row, &b.tmp} {
		if cap(*p) > maxPooled {
			*p = nil
		}
	}
	if cap(b.acc) > maxPooled {
		b.acc = nil
	}
	bufferPool.Put(b)
}

// Prepare is the whole pipeline: it decodes data (checking opt.Limits first),
// applies the EXIF orientation, converts to RGB, resizes to
// opt.Width×opt.Height with PIL's bicubic and normalizes into a CHW float32
// tensor of len 3*Height*Width, written into dst when its capacity allows
// (else a new slice). The result equals, bit for bit, torchvision's
//
//	Normalize(mean, std)(ToTensor()(ImageOps.exif_transpose(Image.open(f)).convert("RGB").resize((W, H), Image.BICUBIC)))
//
// The last resize pass writes straight into the tensor, and the decode and
// resize buffers come from a pool, so a steady stream of requests allocates
// little. Safe for concurrent use.
func Prepare(data []byte, opt Options, dst []float32) ([]float32, error) {
	if err := checkTarget(opt.Width, opt.Height); err != nil {
		return nil, err
	}
	if err := opt.Norm.Check(); err != nil {
		return nil, err
	}
	b := bufferPool.Get().(*buffers)
	defer b.release()
	img, err := decodeRGB(data, opt.Limits, &b.s)
	if err != nil {
		return nil, err
	}
	w, h := opt.Width, opt.Height
	n := 3 * w * h
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	t := opt.Norm.lut()
	resample(img, w, h, &b.tmp, &b.acc, &b.s.row, func(y int, row []uint8) {
		t.row(dst, y, w, h, row)
	})
	return dst, nil
}
