package workload

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofaserve/ofaserve/bench/kserve"
)

var ofaMeta = kserve.ModelMetadata{Name: "ofa_entailment", Inputs: []kserve.TensorMetadata{
	{Name: "IMAGE", Datatype: "BYTES", Shape: []int64{-1, 1}},
	{Name: "HYPOTHESIS", Datatype: "BYTES", Shape: []int64{-1, 1}},
	{Name: "PREMISE", Datatype: "BYTES", Shape: []int64{-1, 1}},
}}

func TestOFAFromFolder(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.jpg", "a.png", "notes.txt", "c.JPEG"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("img-"+n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	imgs, err := ReadImages(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 3 || string(imgs[0]) != "img-a.png" || string(imgs[1]) != "img-b.jpg" || string(imgs[2]) != "img-c.JPEG" {
		t.Fatalf("images %q", imgs)
	}
	texts, err := ParseTexts([]byte("# comment\nthere are two birds.\n\ntwo dogs\tthe dogs are eating\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(texts) != 2 || texts[0] != (Text{Hypothesis: "there are two birds."}) || texts[1] != (Text{Premise: "two dogs", Hypothesis: "the dogs are eating"}) {
		t.Fatalf("texts %+v", texts)
	}

	reqs, err := OFA(ofaMeta, imgs, texts, OFAOptions{Batch: 1, Batching: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 (one per image)", len(reqs))
	}
	r1 := reqs[1]
	if len(r1.Inputs) != 3 || r1.Inputs[2].Name != "PREMISE" || string(r1.Inputs[2].Elems[0]) != "two dogs" {
		t.Errorf("request 1 should carry the premise: %+v", r1.Inputs)
	}
	if len(reqs[0].Inputs) != 2 {
		t.Errorf("request 0 has no premise: %+v", reqs[0].Inputs)
	}
	img := reqs[2].Inputs[0]
	if img.Name != "IMAGE" || !img.Base64JSON || string(img.Elems[0]) != "img-c.JPEG" || len(img.Shape) != 2 || img.Shape[0] != 1 || img.Shape[1] != 1 {
		t.Errorf("IMAGE tensor %+v", img)
	}
	// JSON carries base64 text, binary carries raw bytes.
	body, _, err := kserve.EncodeHTTP(reqs[0], false)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"data":["aW1nLWEucG5n"]`; !contains(body, want) {
		t.Errorf("JSON body %s lacks %s", body, want)
	}
	body, hl, err := kserve.EncodeHTTP(reqs[0], true)
	if err != nil {
		t.Fatal(err)
	}
	if want := "\x09\x00\x00\x00img-a.png"; !contains(body[hl:], want) {
		t.Errorf("binary blobs %q lack %q", body[hl:], want)
	}

	b4, err := OFA(ofaMeta, imgs, texts, OFAOptions{Batch: 2, Batching: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(b4) != 2 || b4[0].Inputs[0].Shape[0] != 2 || len(b4[0].Inputs[1].Elems) != 2 || len(b4[0].Inputs) != 2 {
		t.Errorf("batch 2: %+v", b4[0].Inputs)
	}
	if _, err := OFA(kserve.ModelMetadata{Name: "x", Inputs: []kserve.TensorMetadata{{Name: "A", Datatype: "FP32"}}}, imgs, texts, OFAOptions{Batch: 1}); err == nil {
		t.Error("a model without IMAGE/HYPOTHESIS must be refused")
	}
	if _, err := ReadImages(t.TempDir()); err == nil {
		t.Error("empty folder must fail")
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

func TestShape(t *testing.T) {
	cases := []struct {
		in       kserve.TensorMetadata
		batching bool
		batch    int
		over     []int64
		want     []int64
		fail     bool
	}{
		{kserve.TensorMetadata{Name: "I", Datatype: "FP32", Shape: []int64{-1, 3, 8, 8}}, true, 4, nil, []int64{4, 3, 8, 8}, false},
		{kserve.TensorMetadata{Name: "I", Datatype: "INT64", Shape: []int64{-1, -1}}, true, 2, []int64{7}, []int64{2, 7}, false},
		{kserve.TensorMetadata{Name: "I", Datatype: "INT64", Shape: []int64{-1, -1}}, true, 2, nil, nil, true},
		{kserve.TensorMetadata{Name: "I", Datatype: "BYTES", Shape: []int64{-1}}, false, 1, nil, []int64{1}, false},
		{kserve.TensorMetadata{Name: "I", Datatype: "FP32", Shape: []int64{3}}, false, 2, nil, nil, true},
		{kserve.TensorMetadata{Name: "I", Datatype: "FP32", Shape: []int64{-1, 3}}, true, 1, []int64{4}, nil, true},
		{kserve.TensorMetadata{Name: "I", Datatype: "FP32", Shape: []int64{-1, 3}}, true, 1, []int64{3, 1}, nil, true},
	}
	for i, c := range cases {
		got, err := Shape(c.in, c.batching, c.batch, c.over)
		if (err != nil) != c.fail {
			t.Errorf("case %d: err %v, want fail=%v", i, err, c.fail)
			continue
		}
		if !c.fail && !equal(got, c.want) {
			t.Errorf("case %d: %v, want %v", i, got, c.want)
		}
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRaw(t *testing.T) {
	meta := kserve.ModelMetadata{Name: "ofa_entailment_raw", Inputs: []kserve.TensorMetadata{
		{Name: "IMAGE", Datatype: "FP32", Shape: []int64{-1, 3, 4, 4}},
		{Name: "INPUT_IDS", Datatype: "INT64", Shape: []int64{-1, -1}},
	}}
	shapes := map[string][]int64{"INPUT_IDS": {6}}
	zero, err := Raw(meta, RawOptions{Batch: 2, Batching: true, Shapes: shapes})
	if err != nil {
		t.Fatal(err)
	}
	if len(zero) != 1 || len(zero[0].Inputs[0].Data) != 2*3*4*4*4 || len(zero[0].Inputs[1].Data) != 2*6*8 {
		t.Fatalf("zero request %+v", zero)
	}
	for _, b := range zero[0].Inputs[0].Data {
		if b != 0 {
			t.Fatal("zero data is not zero")
		}
	}
	r1, err := Raw(meta, RawOptions{Batch: 1, Batching: true, Shapes: shapes, Random: true, Seed: 3, Count: 4})
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := Raw(meta, RawOptions{Batch: 1, Batching: true, Shapes: shapes, Random: true, Seed: 3, Count: 4})
	if len(r1) != 4 || string(r1[0].Inputs[0].Data) != string(r2[0].Inputs[0].Data) {
		t.Error("random data must be reproducible from the seed")
	}
	if string(r1[0].Inputs[0].Data) == string(r1[1].Inputs[0].Data) {
		t.Error("distinct requests should differ")
	}
	for i := 0; i < len(r1[0].Inputs[1].Data); i += 8 {
		if v := r1[0].Inputs[1].Data[i]; v >= 100 {
			t.Fatalf("random id %d out of [0,100)", v)
		}
	}
	if _, err := Raw(meta, RawOptions{Batch: 1, Batching: true}); err == nil {
		t.Error("variable dim without --shape must fail")
	}
	if _, err := Raw(meta, RawOptions{Batch: 1, Batching: true, Shapes: map[string][]int64{"NOPE": {1}, "INPUT_IDS": {2}}}); err == nil {
		t.Error("--shape of an unknown input must fail")
	}
}

func TestParseShape(t *testing.T) {
	n, d, err := ParseShape("INPUT_IDS:1,20")
	if err != nil || n != "INPUT_IDS" || !equal(d, []int64{1, 20}) {
		t.Errorf("%q %v %v", n, d, err)
	}
	for _, bad := range []string{"X", "X:", ":3", "X:a", "X:-1", "X:1,,2"} {
		if _, _, err := ParseShape(bad); err == nil {
			t.Errorf("%q should fail", bad)
		}
	}
}

func FuzzParseShape(f *testing.F) {
	f.Add("A:1,2")
	f.Add("ns:x:3")
	f.Fuzz(func(t *testing.T, s string) {
		_, d, err := ParseShape(s)
		if err != nil {
			return
		}
		for _, v := range d {
			if v < 0 {
				t.Fatalf("negative dim from %q", s)
			}
		}
	})
}

func FuzzParseTexts(f *testing.F) {
	f.Add([]byte("a\tb\nc\n"))
	f.Add([]byte("\t\n#x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := ParseTexts(b)
		if err != nil {
			return
		}
		for _, x := range ts {
			if x.Hypothesis == "" {
				t.Fatal("empty hypothesis accepted")
			}
		}
	})
}
