package libtorch_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/ofaserve/ofaserve/internal/testenv"
	"github.com/ofaserve/ofaserve/libtorch"
	"github.com/ofaserve/ofaserve/preprocess"
)

// The parity images and torchvision's tensors of preprocess's own tests (preprocess/testdata/pil_ref.py).
type pilTensor struct {
	Width, Height int
	Norm          string
	Mean, Std     [3]float32
}

type pilCase struct {
	File    string
	Tensors []pilTensor
}

func pilReference(t *testing.T) (string, []pilCase) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(testenv.Python(), filepath.Join("..", "preprocess", "testdata", "pil_ref.py"), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s pil_ref.py: %v\n%s", testenv.Python(), err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []pilCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	return dir, cases
}

// sample is one parity image at one tensor size: its file and torchvision's float32 tensor.
type sample struct {
	name, file, f32 string
}

func floatsToBytes(f []float32) []byte {
	b := make([]byte, 4*len(f))
	for i, v := range f {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// TestStagedImageMatchesPrepare is item 1 of issue 13 on the CPU: every parity image, sent as
// preprocess.PrepareUint8's bytes through a Staging's image input and normalized by the shim, reads back
// (through the echo fixture) bit-identical to preprocess.Prepare's float32 tensor and to torchvision's,
// in batches of up to 4 images of one size. With Precision BFloat16 it is the same tensor rounded to
// bfloat16, as the plain Forward of Prepare's tensor gives. It also counts the bytes that cross to the
// device per image: 3*H*W instead of 3*H*W*4.
func TestStagedImageMatchesPrepare(t *testing.T) {
	dir, cases := pilReference(t)
	type key struct {
		w, h int
		norm string
	}
	groups := map[key][]sample{}
	norms := map[string]pilTensor{}
	for _, c := range cases {
		for _, tt := range c.Tensors {
			k := key{tt.Width, tt.Height, tt.Norm}
			groups[k] = append(groups[k], sample{
				name: fmt.Sprintf("%s/%dx%d/%s", c.File, tt.Width, tt.Height, tt.Norm),
				file: filepath.Join(dir, c.File),
				f32:  filepath.Join(dir, fmt.Sprintf("%s.%dx%d.%s.f32", c.File, tt.Width, tt.Height, tt.Norm)),
			})
			norms[tt.Norm] = tt
		}
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	if len(keys) < 3 || len(norms) < 2 {
		t.Fatalf("parity manifest has %d sizes and %d normalizations", len(keys), len(norms))
	}
	const maxBatch = 4
	ctx := context.Background()
	for _, prec := range []libtorch.DType{libtorch.Float32, libtorch.BFloat16} {
		t.Run(prec.String(), func(t *testing.T) {
			m, err := libtorch.Load(libtorch.FixturePath("echo"), libtorch.Options{Device: libtorch.TestDevice(), Precision: prec})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			stagings := map[string]*libtorch.Staging{}
			for name, n := range norms {
				s, err := m.NewStaging(libtorch.StagingOptions{Inputs: []libtorch.StagingInput{
					{DType: libtorch.Uint8, MaxShape: []int64{maxBatch, 480, 480, 3}, Image: &libtorch.ImageNormalize{Mean: n.Mean, Std: n.Std}},
					{DType: libtorch.Int64, MaxShape: []int64{maxBatch, 4}},
				}})
				if err != nil {
					t.Fatal(err)
				}
				stagings[name] = s
			}
			checked := 0
			var outs []libtorch.Tensor
			for _, k := range keys {
				s := stagings[k.norm]
				norm := preprocess.Normalize{Mean: norms[k.norm].Mean, Std: norms[k.norm].Std}
				opt := preprocess.Options{Width: k.w, Height: k.h, Norm: norm}
				all := groups[k]
				for lo := 0; lo < len(all); lo += maxBatch {
					batch := all[lo:min(lo+maxBatch, len(all))]
					b := int64(len(batch))
					var pix []byte
					var want []float32
					var torchvision []byte
					for _, smp := range batch {
						data, err := os.ReadFile(smp.file)
						if err != nil {
							t.Fatal(err)
						}
						u8, err := preprocess.PrepareUint8(data, opt, nil)
						if err != nil {
							t.Fatalf("%s: %v", smp.name, err)
						}
						f, err := preprocess.Prepare(data, opt, nil)
						if err != nil {
							t.Fatalf("%s: %v", smp.name, err)
						}
						tv, err := os.ReadFile(smp.f32)
						if err != nil {
							t.Fatal(err)
						}
						pix, want, torchvision = append(pix, u8...), append(want, f...), append(torchvision, tv...)
					}
					ids := libtorch.Tensor{DType: libtorch.Int64, Shape: []int64{b, 4}, Data: make([]byte, 8*4*b)}
					before := s.Stats().BytesStaged
					st, err := s.Stage(ctx, []libtorch.Tensor{{DType: libtorch.Uint8, Shape: []int64{b, int64(k.h), int64(k.w), 3}, Data: pix}, ids})
					if err != nil {
						t.Fatal(err)
					}
					if got, w := s.Stats().BytesStaged-before, 3*int64(k.h*k.w)*b+int64(len(ids.Data)); got != w {
						t.Errorf("%v: %d bytes staged, want %d (uint8 images + ids)", k, got, w)
					}
					if outs, err = s.Forward(ctx, st, outs); err != nil {
						t.Fatal(err)
					}
					wantShape := []int64{b, 3, int64(k.h), int64(k.w)}
					if outs[0].DType != libtorch.Float32 || fmt.Sprint(outs[0].Shape) != fmt.Sprint(wantShape) {
						t.Fatalf("%v: image came back %v %v, want float32 %v", k, outs[0].DType, outs[0].Shape, wantShape)
					}
					ref := floatsToBytes(want)
					if prec == libtorch.Float32 {
						if !bytes.Equal(outs[0].Data, ref) {
							t.Errorf("%v: the shim's normalization differs from preprocess.Prepare in %d of %d floats", k, countDiff(outs[0].Data, ref), len(want))
						}
						if !bytes.Equal(outs[0].Data, torchvision) {
							t.Errorf("%v: the shim's normalization differs from torchvision in %d of %d floats", k, countDiff(outs[0].Data, torchvision), len(want))
						}
					} else {
						// The plain path: Prepare's float32 tensor, converted to bfloat16 by the shim.
						plain, err := m.Forward(ctx, []libtorch.Tensor{{DType: libtorch.Float32, Shape: wantShape, Data: ref}, ids})
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(outs[0].Data, plain[0].Data) {
							t.Errorf("%v: staged bfloat16 image differs from the plain path's in %d of %d floats", k, countDiff(outs[0].Data, plain[0].Data), len(want))
						}
						if bytes.Equal(outs[0].Data, ref) {
							t.Errorf("%v: the staged image is still float32: the module's precision was not applied", k)
						}
						for i := 0; i < len(want); i++ {
							if binary.LittleEndian.Uint32(outs[0].Data[4*i:])&0xffff != 0 {
								t.Fatalf("%v: element %d is not a bfloat16 value", k, i)
							}
						}
					}
					if !bytes.Equal(outs[1].Data, ids.Data) || outs[1].DType != libtorch.Int64 {
						t.Errorf("%v: ids came back changed (%v)", k, outs[1].DType)
					}
					checked += len(batch)
				}
			}
			t.Logf("%d images through staged uint8 + device normalization, %s", checked, prec)
			h, w := int64(480), int64(480)
			t.Logf("host->device bytes per 480x480 image: float32 %d, uint8 %d", 3*h*w*4, 3*h*w)
		})
	}
}

func countDiff(a, b []byte) int {
	n := 0
	for i := 0; i+4 <= len(a) && i+4 <= len(b); i += 4 {
		if !bytes.Equal(a[i:i+4], b[i:i+4]) {
			n++
		}
	}
	return n
}
