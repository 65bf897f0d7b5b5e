package ofa_test

import (
	"encoding/binary"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// warmupConfig is the model_warmup block the test server's ofa_entailment config gets: one sample of an
// image and a hypothesis read from the model's warmup/ folder (writeWarmupFiles), run twice.
const warmupConfig = `
model_warmup [ {
  name: "photo"
  batch_size: 2
  count: 2
  inputs { key: "IMAGE" value: { data_type: TYPE_STRING dims: [ 1 ] input_data_file: "image.bin" } }
  inputs { key: "HYPOTHESIS" value: { data_type: TYPE_STRING dims: [ 1 ] input_data_file: "hypothesis.bin" } }
} ]
`

// writeWarmupFiles writes the sample's inputs in Triton's TYPE_STRING file format: a 4-byte
// little-endian length, then the bytes.
func writeWarmupFiles(modelDir, image string) error {
	dir := filepath.Join(modelDir, "warmup")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	img, err := os.ReadFile(image)
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"image.bin": img, "hypothesis.bin": []byte("there is an animal.")} {
		elem := binary.LittleEndian.AppendUint32(nil, uint32(len(data)))
		if err := os.WriteFile(filepath.Join(dir, name), append(elem, data...), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// TestWarmupBeforeReady: the server warmed ofa_entailment (every bucket, then the config's model_warmup
// sample) before it answered ready, logged it, and exports the load and warm-up times.
func TestWarmupBeforeReady(t *testing.T) {
	logs := env.logs.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`msg="ofa buckets warmed" model=ofa_entailment version=1 buckets=20 instances=1 duration=`),
		regexp.MustCompile(`msg="model loaded" model=ofa_entailment version=1 kind=ofa duration=\S+ warmup=\S+ warmup_samples=1`),
	} {
		if !want.MatchString(logs) {
			t.Errorf("server log lacks %s:\n%s", want, logs)
		}
		for _, line := range strings.Split(logs, "\n") {
			if want.MatchString(line) {
				t.Log(line)
			}
		}
	}
	resp, err := http.Get(env.metrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	values := map[string]float64{}
	for _, name := range []string{"nv_model_load_duration_secs", "nv_model_warmup_duration_secs"} {
		m := regexp.MustCompile(name + `\{model="ofa_entailment",version="1"\} (\S+)`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("metrics lack %s for ofa_entailment:\n%s", name, body)
		}
		values[name], _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if w, l := values["nv_model_warmup_duration_secs"], values["nv_model_load_duration_secs"]; w <= 0 || l < w {
		t.Errorf("warm-up %gs, load %gs: want 0 < warm-up <= load", w, l)
	}
	if !strings.Contains(string(body), `nv_model_warmup_duration_secs{model="ofa_entailment_raw",version="1"} `) {
		t.Error("the raw model's warm-up time (no samples) is not exported")
	}
}
