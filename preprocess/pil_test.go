package preprocess

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ofaserve/ofaserve/internal/testenv"
)

// The reference: preprocess/testdata/pil_ref.py run once per test binary by
// the interpreter that sees Debian's PIL and torchvision ($OFASERVE_PYTHON,
// default /usr/bin/python3). It extracts real photos from Debian packages,
// makes variants with PIL and writes PIL's and torchvision's outputs.

type refTensor struct {
	Width, Height int
	Norm          string
	Mean, Std     [3]float32
}

type refCase struct {
	File          string
	Width, Height int
	Sizes         [][2]int
	Tensors       []refTensor
}

var (
	refOnce  sync.Once
	refDir   string
	refCases []refCase
	refErr   error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if refDir != "" {
		os.RemoveAll(refDir)
	}
	os.Exit(code)
}

// pilRef returns the reference directory and cases, generating them on first use.
// A missing interpreter, package or photo fails the test: it never skips.
func pilRef(t testing.TB) (string, []refCase) {
	t.Helper()
	refOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ofaserve-pilref-")
		if err != nil {
			refErr = err
			return
		}
		refDir = dir
		cmd := exec.Command(testenv.Python(), filepath.Join("testdata", "pil_ref.py"), dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			refErr = fmt.Errorf("%s testdata/pil_ref.py: %v\n%s", testenv.Python(), err, stderr.String())
			return
		}
		b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			refErr = err
			return
		}
		refErr = json.Unmarshal(b, &refCases)
		if refErr == nil && len(refCases) < 40 {
			refErr = fmt.Errorf("manifest lists only %d images", len(refCases))
		}
	})
	if refErr != nil {
		t.Fatalf("PIL reference unavailable (scripts/dev/setup.sh installs it): %v", refErr)
	}
	return refDir, refCases
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// diffBytes reports the largest absolute difference and how many samples differ.
func diffBytes(a, b []uint8) (maxd, n int) {
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		if d > 0 {
			n++
		}
		if d > maxd {
			maxd = d
		}
	}
	return maxd, n
}

func TestDecodeMatchesPIL(t *testing.T) {
	dir, cases := pilRef(t)
	for _, c := range cases {
		t.Run(c.File, func(t *testing.T) {
			img, err := DecodeRGB(readFile(t, filepath.Join(dir, c.File)), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if img.Width != c.Width || img.Height != c.Height {
				t.Fatalf("size %dx%d, PIL %dx%d", img.Width, img.Height, c.Width, c.Height)
			}
			want := readFile(t, filepath.Join(dir, c.File+".rgb"))
			if maxd, n := diffBytes(img.Pix, want); n != 0 {
				t.Errorf("decoded RGB differs from PIL: max |Δ| = %d in %d of %d samples", maxd, n, len(want))
			}
		})
	}
}

func TestResizeMatchesPIL(t *testing.T) {
	dir, cases := pilRef(t)
	checked := 0
	for _, c := range cases {
		src := &RGB{c.Width, c.Height, readFile(t, filepath.Join(dir, c.File+".rgb"))}
		for _, s := range c.Sizes {
			name := fmt.Sprintf("%s/%dx%d", c.File, s[0], s[1])
			got, err := src.Resize(s[0], s[1])
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			want := readFile(t, filepath.Join(dir, fmt.Sprintf("%s.%dx%d.rgb", c.File, s[0], s[1])))
			if maxd, n := diffBytes(got.Pix, want); n != 0 || len(got.Pix) != len(want) {
				t.Errorf("%s: resized pixels differ from PIL: max |Δ| = %d in %d of %d samples", name, maxd, n, len(want))
			}
			checked++
		}
	}
	t.Logf("%d resizes bit-exact with PIL", checked)
}

func TestPrepareMatchesTorchvision(t *testing.T) {
	dir, cases := pilRef(t)
	checked := 0
	var dst []float32
	for _, c := range cases {
		data := readFile(t, filepath.Join(dir, c.File))
		for _, tt := range c.Tensors {
			name := fmt.Sprintf("%s/%dx%d/%s", c.File, tt.Width, tt.Height, tt.Norm)
			var err error
			dst, err = Prepare(data, Options{Width: tt.Width, Height: tt.Height,
				Norm: Normalize{Mean: tt.Mean, Std: tt.Std}}, dst)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			raw := readFile(t, filepath.Join(dir, fmt.Sprintf("%s.%dx%d.%s.f32", c.File, tt.Width, tt.Height, tt.Norm)))
			if len(raw) != 4*len(dst) {
				t.Fatalf("%s: %d floats, torchvision %d", name, len(dst), len(raw)/4)
			}
			bad, maxd := 0, 0.0
			for i, v := range dst {
				w := binary.LittleEndian.Uint32(raw[4*i:])
				if math.Float32bits(v) != w {
					bad++
					maxd = math.Max(maxd, math.Abs(float64(v)-float64(math.Float32frombits(w))))
				}
			}
			if bad != 0 {
				t.Errorf("%s: %d of %d floats differ from torchvision (max |Δ| %g)", name, bad, len(dst), maxd)
			}
			checked++
		}
	}
	t.Logf("%d tensors bit-identical to torchvision", checked)
}

// PrepareUint8 is Prepare without the normalization: its pixels, normalized in
// Go, are torchvision's tensor bit for bit (the normalization is one-to-one
// per channel, so the bytes are PIL's resized pixels), they equal DecodeRGB +
// Resize, and one buffer is reused across calls of every size.
func TestPrepareUint8MatchesTorchvision(t *testing.T) {
	dir, cases := pilRef(t)
	checked := 0
	var pix []uint8
	var f32 []float32
	for _, c := range cases {
		data := readFile(t, filepath.Join(dir, c.File))
		decoded, err := DecodeRGB(data, Limits{})
		if err != nil {
			t.Fatalf("%s: %v", c.File, err)
		}
		for _, tt := range c.Tensors {
			name := fmt.Sprintf("%s/%dx%d/%s", c.File, tt.Width, tt.Height, tt.Norm)
			norm := Normalize{Mean: tt.Mean, Std: tt.Std}
			pix, err = PrepareUint8(data, Options{Width: tt.Width, Height: tt.Height, Norm: norm}, pix)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(pix) != 3*tt.Width*tt.Height {
				t.Fatalf("%s: %d bytes, want %d", name, len(pix), 3*tt.Width*tt.Height)
			}
			resized, err := decoded.Resize(tt.Width, tt.Height)
			if err != nil {
				t.Fatal(err)
			}
			if maxd, n := diffBytes(pix, resized.Pix); n != 0 {
				t.Errorf("%s: PrepareUint8 differs from DecodeRGB+Resize: max |Δ| = %d in %d samples", name, maxd, n)
			}
			f32 = ToCHW(&RGB{Width: tt.Width, Height: tt.Height, Pix: pix}, norm, f32)
			raw := readFile(t, filepath.Join(dir, fmt.Sprintf("%s.%dx%d.%s.f32", c.File, tt.Width, tt.Height, tt.Norm)))
			if len(raw) != 4*len(f32) {
				t.Fatalf("%s: %d floats, torchvision %d", name, len(f32), len(raw)/4)
			}
			bad := 0
			for i, v := range f32 {
				if math.Float32bits(v) != binary.LittleEndian.Uint32(raw[4*i:]) {
					bad++
				}
			}
			if bad != 0 {
				t.Errorf("%s: %d of %d floats from PrepareUint8's pixels differ from torchvision", name, bad, len(f32))
			}
			checked++
		}
	}
	t.Logf("%d uint8 images bit-identical to PIL's resize", checked)
}
