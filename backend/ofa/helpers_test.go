package ofa

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/backend/ofa/ofatest"
	"github.com/ofaserve/ofaserve/internal/testenv"
	torch "github.com/ofaserve/ofaserve/libtorch"
	"github.com/ofaserve/ofaserve/repository"
)

// testRepo is the exported micro model's repository (set by TestMain).
var testRepo string

func TestMain(m *testing.M) {
	repo, err := ofatest.Export()
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend/ofa tests need an exported OFA model (run scripts/dev/setup.sh and `make shim`):", err)
		os.Exit(1)
	}
	testRepo = repo
	os.Exit(m.Run())
}

// exportedConfig returns the exported ofa_entailment config.pbtxt with the
// given replacements (old, new, old, new, ...).
func exportedConfig(t testing.TB, replace ...string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testRepo, "ofa_entailment", "config.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			t.Fatalf("config.pbtxt has no %q", replace[i])
		}
		s = strings.ReplaceAll(s, replace[i], replace[i+1])
	}
	return s
}

// testModel is a loaded model with the signature the repository would
// validate its requests against.
type testModel struct {
	*Model
	sig backend.Signature
}

// infer runs req as the repository's model handle does: validated
// (backend.Signature.Validate), then handed to the kind.
func (m testModel) infer(ctx context.Context, req *backend.Request) (*backend.Response, error) {
	if err := m.sig.Validate(req); err != nil {
		return nil, err
	}
	return m.Infer(ctx, req)
}

// load loads the exported model with config text pbtxt.
func load(t testing.TB, pbtxt string) (testModel, error) {
	t.Helper()
	return loadFrom(t, testRepo, pbtxt, nil)
}

// loadFrom loads the ofa_entailment model of repository repo with config text pbtxt, logging to log
// (nil: nowhere).
func loadFrom(t testing.TB, repo, pbtxt string, log *slog.Logger) (testModel, error) {
	t.Helper()
	cfg, err := repository.ParseConfig("config.pbtxt", []byte(pbtxt))
	if err != nil {
		t.Fatal(err)
	}
	if err := repository.Normalize("config.pbtxt", "ofa_entailment", cfg, torch.DeviceCount()); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(repo, "ofa_entailment")
	sig := backend.SignatureOf("ofa_entailment", cfg)
	bm, err := Load(context.Background(), backend.LoadSpec{
		Name: "ofa_entailment", Version: 1, ModelDir: dir, VersionDir: filepath.Join(dir, "1"), Config: cfg, Signature: sig,
		Logger: log,
	})
	if err != nil {
		return testModel{}, err
	}
	m := bm.(*Model)
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return testModel{m, sig}, nil
}

func mustLoad(t testing.TB, pbtxt string) testModel {
	t.Helper()
	m, err := load(t, pbtxt)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// bytesTensor is a BYTES tensor of the given elements.
func bytesTensor(name string, shape []int64, elems ...[]byte) backend.Tensor {
	var data []byte
	for _, e := range elems {
		data = binary.LittleEndian.AppendUint32(data, uint32(len(e)))
		data = append(data, e...)
	}
	return backend.Tensor{Name: name, Datatype: "BYTES", Shape: shape, Data: data}
}

// request builds a request of n = len(images) items; premises may be nil.
func request(images [][]byte, hyps []string, premises []string, outputs ...string) *backend.Request {
	n := int64(len(images))
	shape := []int64{n, 1}
	req := &backend.Request{Outputs: outputs}
	req.Inputs = append(req.Inputs, bytesTensor(InputImage, shape, images...))
	var hs, ps [][]byte
	for _, h := range hyps {
		hs = append(hs, []byte(h))
	}
	req.Inputs = append(req.Inputs, bytesTensor(InputHypothesis, shape, hs...))
	if premises != nil {
		for _, p := range premises {
			ps = append(ps, []byte(p))
		}
		req.Inputs = append(req.Inputs, bytesTensor(InputPremise, shape, ps...))
	}
	return req
}

// output returns the named output of resp.
func output(t testing.TB, resp *backend.Response, name string) backend.Tensor {
	t.Helper()
	for _, o := range resp.Outputs {
		if o.Name == name {
			return o
		}
	}
	t.Fatalf("no output %s in %v", name, resp.Outputs)
	return backend.Tensor{}
}

// scores decodes a SCORES tensor into rows.
func scores(t testing.TB, o backend.Tensor) [][3]float32 {
	t.Helper()
	if o.Datatype != "FP32" || len(o.Shape) != 2 || o.Shape[1] != 3 || len(o.Data) != int(o.Shape[0])*12 {
		t.Fatalf("SCORES: datatype %s shape %v, %d bytes", o.Datatype, o.Shape, len(o.Data))
	}
	rows := make([][3]float32, o.Shape[0])
	for i := range rows {
		for k := range 3 {
			rows[i][k] = math.Float32frombits(binary.LittleEndian.Uint32(o.Data[(i*3+k)*4:]))
		}
	}
	return rows
}

// elements splits a BYTES output.
func elements(t testing.TB, o backend.Tensor) []string {
	t.Helper()
	var out []string
	d := o.Data
	for len(d) > 0 {
		n := binary.LittleEndian.Uint32(d)
		out = append(out, string(d[4:4+n]))
		d = d[4+n:]
	}
	return out
}

// testImages encodes a few synthetic images: RGB PNG, JPEG, grayscale PNG,
// of sizes that shrink one axis and grow the other.
func testImages(t testing.TB) map[string][]byte {
	t.Helper()
	rgb := image.NewRGBA(image.Rect(0, 0, 97, 41))
	for y := range 41 {
		for x := range 97 {
			rgb.Set(x, y, color.RGBA{uint8(x * 255 / 96), uint8(y * 6), uint8((x * y) % 256), 255})
		}
	}
	photo := image.NewRGBA(image.Rect(0, 0, 50, 130))
	for y := range 130 {
		for x := range 50 {
			v := math.Sin(float64(x)/5) * math.Cos(float64(y)/9)
			photo.Set(x, y, color.RGBA{uint8(128 + 120*v), uint8(x * 5), uint8(255 - y), 255})
		}
	}
	gray := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i * 7 % 256)
	}
	var p1, p2, p3 bytes.Buffer
	if err := png.Encode(&p1, rgb); err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(&p2, photo, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(&p3, gray); err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{"rgb.png": p1.Bytes(), "photo.jpg": p2.Bytes(), "gray.png": p3.Bytes()}
}

// refCase is one case for testdata/reference.py.
type refCase struct {
	Image      string  `json:"image"`
	Hypothesis string  `json:"hypothesis"`
	Premise    *string `json:"premise"`
}

type refResult struct {
	Probabilities []float64 `json:"probabilities"`
	Label         string    `json:"label"`
	InputIDs      []int64   `json:"input_ids"`
}

// reference runs the Python reference pipeline over cases.
func reference(t testing.TB, cases []refCase) []refResult {
	t.Helper()
	dir := t.TempDir()
	data, _ := json.Marshal(cases)
	file := filepath.Join(dir, "cases.json")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Python(), filepath.Join("testdata", "reference.py"), testRepo, file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference.py: %v\n%s", err, stderr.String())
	}
	var res []refResult
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(cases) {
		t.Fatalf("reference.py output: %v (%d results for %d cases)", err, len(res), len(cases))
	}
	return res
}

// pngHeader is a PNG whose IHDR claims w×h RGB pixels, with no pixel data.
func pngHeader(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(ihdr)))
	body := append([]byte("IHDR"), ihdr...)
	chunk = append(chunk, body...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(body))
	return append([]byte("\x89PNG\r\n\x1a\n"), chunk...)
}
