package preprocess

import (
	"image"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/nfnt/resize"
	"golang.org/x/image/draw"
)

// benchJPEG is the benchmark's input: $OFASERVE_BENCH_JPEG (scripts/bench/bench_preprocess.sh
// sets it to the file it also times in Python), else the reference 640×480 photo.
func benchJPEG(b *testing.B) []byte {
	if p := os.Getenv("OFASERVE_BENCH_JPEG"); p != "" {
		return readFile(b, p)
	}
	dir, _ := pilRef(b)
	return readFile(b, filepath.Join(dir, "photo_640x480_q90.jpg"))
}

// BenchmarkPrepare: 640×480 JPEG -> 480×480 CHW float32, OFA normalization;
// the whole per-request image path. Run with -cpu 1 for per-core throughput.
func BenchmarkPrepare(b *testing.B) {
	data := benchJPEG(b)
	opt := Options{Width: 480, Height: 480, Norm: OFANormalize}
	dst := make([]float32, 3*480*480)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		var err error
		if dst, err = Prepare(data, opt, dst); err != nil {
			b.Fatal(err)
		}
	}
	// CPU time per image: on a shared, loaded machine it is steadier than wall time.
	b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkPrepareUint8 is BenchmarkPrepare without the normalization (the
// bytes a GPU normalizes itself): compare its cpu-ms/op with Prepare's.
func BenchmarkPrepareUint8(b *testing.B) {
	data := benchJPEG(b)
	opt := Options{Width: 480, Height: 480}
	dst := make([]uint8, 3*480*480)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		var err error
		if dst, err = PrepareUint8(data, opt, dst); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// cpuTime is this process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// The stages separately, to see where the time goes.
func BenchmarkDecodeJPEG(b *testing.B) {
	data := benchJPEG(b)
	var s scratch
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := decodeRGB(data, Limits{}, &s); err != nil {
			b.Fatal(err)
		}
	}
}

// resizeRef is the PIL reference for the resampler comparison: the 640×480
// photo as PIL decodes it, and PIL's resize of it to w×h.
func resizeRef(b *testing.B, w, h int) (*RGB, []uint8) {
	dir, _ := pilRef(b)
	name := filepath.Join(dir, "photo_640x480_q90.jpg")
	src := &RGB{640, 480, readFile(b, name+".rgb")}
	name = "photo_640x480_q90.jpg"
	return src, readFile(b, filepath.Join(dir, name+"."+itoa(w)+"x"+itoa(h)+".rgb"))
}

func itoa(v int) string {
	if v == 0 {
		return "0"
	}
	var d []byte
	for ; v > 0; v /= 10 {
		d = append([]byte{byte('0' + v%10)}, d...)
	}
	return string(d)
}

func toRGBA(src *RGB) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, src.Width, src.Height))
	for i := 0; i < src.Width*src.Height; i++ {
		copy(m.Pix[4*i:4*i+3], src.Pix[3*i:3*i+3])
		m.Pix[4*i+3] = 255
	}
	return m
}

func fromRGBA(m *image.RGBA) []uint8 {
	n := m.Rect.Dx() * m.Rect.Dy()
	out := make([]uint8, 3*n)
	for i := 0; i < n; i++ {
		copy(out[3*i:3*i+3], m.Pix[4*i:4*i+3])
	}
	return out
}

// BenchmarkResample compares our resampler with x/image/draw's CatmullRom and
// nfnt/resize's Bicubic on 640×480 -> 480×480 and -> 224×224, and reports how
// far each is from PIL (maxΔ: largest difference in levels; diff%: share of
// samples that differ).
func BenchmarkResample(b *testing.B) {
	for _, size := range [][2]int{{480, 480}, {224, 224}} {
		w, h := size[0], size[1]
		src, want := resizeRef(b, w, h)
		rgba := toRGBA(src)
		report := func(b *testing.B, got []uint8) {
			maxd, n := diffBytes(got, want)
			b.ReportMetric(float64(maxd), "maxΔ")
			b.ReportMetric(100*float64(n)/float64(len(want)), "diff%")
		}
		sz := itoa(w) + "x" + itoa(h)
		b.Run("pil-exact/"+sz, func(b *testing.B) {
			var out *RGB
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				out, _ = src.Resize(w, h)
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
			report(b, out.Pix)
		})
		b.Run("xdraw-CatmullRom/"+sz, func(b *testing.B) {
			dst := image.NewRGBA(image.Rect(0, 0, w, h))
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				draw.CatmullRom.Scale(dst, dst.Rect, rgba, rgba.Rect, draw.Src, nil)
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
			report(b, fromRGBA(dst))
		})
		b.Run("nfnt-Bicubic/"+sz, func(b *testing.B) {
			var dst image.Image
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				dst = resize.Resize(uint(w), uint(h), rgba, resize.Bicubic)
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
			report(b, fromRGBA(dst.(*image.RGBA)))
		})
	}
}
