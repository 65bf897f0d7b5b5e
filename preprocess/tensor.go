package preprocess

import "fmt"

// Normalize is torchvision's Normalize(mean, std) applied after ToTensor().
type Normalize struct {
	Mean, Std [3]float32
}

// OFANormalize is OFA's normalization: mean = std = 0.5, mapping [0, 255] to [-1, 1].
var OFANormalize = Normalize{Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.5, 0.5, 0.5}}

// ImageNetNormalize is torchvision's usual ImageNet mean/std.
var ImageNetNormalize = Normalize{
	Mean: [3]float32{0.485, 0.456, 0.406},
	Std:  [3]float32{0.229, 0.224, 0.225},
}

// Check refuses a zero or NaN std, which Prepare would otherwise divide by.
func (n Normalize) Check() error {
	for c, s := range n.Std {
		if s == 0 || s != s {
			return fmt.Errorf("preprocess: std[%d] = %v", c, s)
		}
	}
	return nil
}

// lut is the 256 possible outputs of ToTensor + Normalize for each channel,
// computed in float32 exactly as PyTorch's CPU kernels do:
// x = float32(k) / 255; out = (x - mean) / std (IEEE division, no reciprocal).
type lut [3][256]float32

func (n Normalize) lut() (t lut) {
	for c := 0; c < 3; c++ {
		m, s := n.Mean[c], n.Std[c]
		for k := 0; k < 256; k++ {
			x := float32(k) / float32(255)
			// Separate statements keep every step a float32 rounding.
			d := x - m
			t[c][k] = d / s
		}
	}
	return t
}

// row writes one packed-RGB row y of width w into the CHW tensor dst (3 planes of w*h).
func (t *lut) row(dst []float32, y, w, h int, row []uint8) {
	plane := w * h
	r := dst[y*w : y*w+w]
	g := dst[plane+y*w : plane+y*w+w]
	b := dst[2*plane+y*w : 2*plane+y*w+w]
	row = row[:3*w]
	for x := range r {
		p := row[3*x : 3*x+3 : 3*x+3]
		r[x] = t[0][p[0]]
		g[x] = t[1][p[1]]
		b[x] = t[2][p[2]]
	}
}

// ToCHW writes img as a normalized CHW float32 tensor ([3][H][W], R plane
// first) into dst, growing it if its capacity is short, and returns it. It is
// bit-identical to torchvision's Normalize(mean, std)(ToTensor()(img)).
// A zero std yields infinities, as in torchvision.
func ToCHW(img *RGB, norm Normalize, dst []float32) []float32 {
	n := 3 * img.Width * img.Height
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	t := norm.lut()
	for y := 0; y < img.Height; y++ {
		t.row(dst, y, img.Width, img.Height, img.Pix[3*img.Width*y:3*img.Width*(y+1)])
	}
	return dst
}
