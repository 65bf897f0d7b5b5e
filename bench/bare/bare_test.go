package bare

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/bench/workload"
)

const metaJSON = `{"image_size":[4,6],"bos_id":0,"pad_id":1,"eos_id":2,"max_src_length":3,
 "prompt_with_premise":" can image and text1 \" {premise} \" imply text2 \" {hypothesis} \"?",
 "prompt_without_premise":" does the image describe \" {hypothesis} \"?"}`

func TestPromptAndPreCaption(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.json")
	if err := os.WriteFile(p, []byte(metaJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ReadMeta(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Prompt(workload.Text{Hypothesis: "..There are  TWO birds-here/now. "}); got != ` does the image describe " there are two birds here now. "?` {
		t.Errorf("prompt %q", got)
	}
	if got := m.Prompt(workload.Text{Premise: "Two dogs.", Hypothesis: "<person> eats"}); got != ` can image and text1 " two dogs. " imply text2 " person eats "?` {
		t.Errorf("premise prompt %q", got)
	}
	if err := os.WriteFile(p, []byte(`{"image_size":[0,3]}`), 0o644); err == nil {
		if _, err := ReadMeta(p); err == nil {
			t.Error("bad image_size must fail")
		}
	}
}

func TestBuildInputs(t *testing.T) {
	m := Meta{ImageSize: []int{4, 6}, BosID: 0, PadID: 1, EosID: 2, MaxSrcLength: 3,
		PromptWithoutPremise: "{hypothesis}", PromptWithPremise: "{premise}|{hypothesis}"}
	// A fake encoder: one id per word, 10 + word length.
	enc := func(s string) []int32 {
		var ids []int32
		for _, w := range strings.Fields(s) {
			ids = append(ids, int32(10+len(w)))
		}
		return ids
	}
	texts := []workload.Text{{Hypothesis: "a bb"}, {Hypothesis: "a bb ccc dddd"}}
	in, err := BuildInputs(m, enc, texts, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Rows: [0 11 12 2 1], [0 11 12 13 2] (truncated to 3 ids), [0 11 12 2 1].
	want := []int64{0, 11, 12, 2, 1, 0, 11, 12, 13, 2, 0, 11, 12, 2, 1}
	if len(in.IDShape) != 2 || in.IDShape[0] != 3 || in.IDShape[1] != 5 {
		t.Fatalf("id shape %v", in.IDShape)
	}
	for i, w := range want {
		if got := int64(binary.LittleEndian.Uint64(in.IDs[i*8:])); got != w {
			t.Fatalf("ids[%d] = %d, want %d (all %v)", i, got, w, want)
		}
	}
	if len(in.Images) != 3*3*4*6*4 || in.ImageShape[2] != 4 || in.ImageShape[3] != 6 {
		t.Errorf("image shape %v bytes %d", in.ImageShape, len(in.Images))
	}
	if len(in.Pixels) != 3*3*4*6 || fmt.Sprint(in.PixelsShape) != "[3 4 6 3]" {
		t.Errorf("uint8 pixels shape %v bytes %d", in.PixelsShape, len(in.Pixels))
	}
	if _, err := BuildInputs(m, enc, nil, 1, 1); err == nil {
		t.Error("no texts must fail")
	}
}

func TestRun(t *testing.T) {
	calls := 0
	fwd := func(ctx context.Context, in Inputs) error {
		calls++
		time.Sleep(time.Millisecond)
		return nil
	}
	r, err := Run(context.Background(), fwd, Inputs{Batch: 4, IDShape: []int64{4, 9}}, Options{Warmup: 2, Duration: time.Hour, MaxIters: 5})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 7 || r.Iterations != 5 || r.SeqLen != 9 {
		t.Errorf("calls %d result %+v", calls, r)
	}
	// 4 inferences per ~1ms forward: at most 4000/s.
	if r.Throughput > 4000 || r.Throughput <= 0 || r.P50 < time.Millisecond {
		t.Errorf("throughput %v p50 %v", r.Throughput, r.P50)
	}
	boom := errors.New("boom")
	if _, err := Run(context.Background(), func(context.Context, Inputs) error { return boom }, Inputs{Batch: 1}, Options{}); !errors.Is(err, boom) {
		t.Errorf("error %v, want boom", err)
	}
}

func FuzzParseMeta(f *testing.F) {
	f.Add([]byte(metaJSON))
	f.Add([]byte(`{"image_size":[1e9,2]}`))
	f.Add([]byte(`{"image_size":[2,2],"prompt_with_premise":"a","prompt_without_premise":"b"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMeta(b)
		if err != nil {
			return
		}
		if m.ImageSize[0] <= 0 || m.ImageSize[0] > 4096 || m.ImageSize[1] <= 0 || m.ImageSize[1] > 4096 {
			t.Fatalf("accepted image_size %v", m.ImageSize)
		}
	})
}
