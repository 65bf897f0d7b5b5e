package preprocess

import "sync"

// Options configure Prepare and PrepareUint8.
type Options struct {
	Width, Height int       // the model's input size (e.g. 480×480 for OFA-large)
	Norm          Normalize // e.g. OFANormalize (Prepare only: PrepareUint8 does not normalize)
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
// Each resized row is normalized into the tensor as it is handed over, and the
// decode and resize buffers come from a pool, so a steady stream of requests
// allocates little. Safe for concurrent use.
func Prepare(data []byte, opt Options, dst []float32) ([]float32, error) {
	if err := checkTarget(opt.Width, opt.Height); err != nil {
		return nil, err
	}
	if err := opt.Norm.Check(); err != nil {
		return nil, err
	}
	w, h := opt.Width, opt.Height
	var t lut
	err := prepare(data, opt, func() {
		if n := 3 * w * h; cap(dst) < n {
			dst = make([]float32, n)
		} else {
			dst = dst[:n]
		}
		t = opt.Norm.lut()
	}, func(y int, row []uint8) {
		t.row(dst, y, w, h, row)
	})
	if err != nil {
		return nil, err
	}
	return dst, nil
}

// PrepareUint8 is Prepare without the normalization: the resized image as
// 8-bit RGB in HWC order (Height rows of Width pixels of R, G, B: the layout of
// RGB.Pix and of numpy.asarray(pil_image)), len 3*Height*Width, written into
// dst when its capacity allows (else a new slice). opt.Norm is ignored.
//
// It is a quarter of Prepare's bytes, for callers that normalize elsewhere (on
// the GPU: libtorch's Staging with an ImageNormalize input computes the same
// float32 values as Prepare from these bytes). The pixels are exactly
// Pillow's Image.resize((W, H), Image.BICUBIC) after the same decode, and
// ToCHW(&RGB{W, H, pix}, norm, nil) equals Prepare's output bit for bit.
func PrepareUint8(data []byte, opt Options, dst []uint8) ([]uint8, error) {
	w := opt.Width
	err := prepare(data, opt, func() {
		if n := 3 * w * opt.Height; cap(dst) < n {
			dst = make([]uint8, n)
		} else {
			dst = dst[:n]
		}
	}, func(y int, row []uint8) {
		copy(dst[3*w*y:3*w*(y+1)], row[:3*w])
	})
	if err != nil {
		return nil, err
	}
	return dst, nil
}

// prepare decodes data with pooled buffers and resamples it to
// opt.Width×opt.Height, handing each output row (packed RGB) to emit, top to
// bottom. ready runs once the image has decoded, before the first row: the
// caller sizes its output there, so a refused input allocates nothing.
func prepare(data []byte, opt Options, ready func(), emit func(y int, row []uint8)) error {
	if err := checkTarget(opt.Width, opt.Height); err != nil {
		return err
	}
	b := bufferPool.Get().(*buffers)
	defer b.release()
	img, err := decodeRGB(data, opt.Limits, &b.s)
	if err != nil {
		return err
	}
	ready()
	resample(img, opt.Width, opt.Height, &b.tmp, &b.acc, &b.s.row, emit)
	return nil
}
