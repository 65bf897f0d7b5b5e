package libtorch

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
	torch "github.com/ofaserve/ofaserve/libtorch"
	"github.com/ofaserve/ofaserve/repository"
)

// TestThreadParametersApply loads models with thread parameters in a fresh process (the settings are
// process-wide and libtorch takes the inter-op one once): the first model's values take effect, and a
// second model asking for others still loads and is logged as ignored. (backend/ofa's TestLoadErrors
// checks that the other kind refuses a bad parameter too.)
func TestThreadParametersApply(t *testing.T) {
	if os.Getenv("OFASERVE_THREADS_CHILD") == "1" {
		threadsChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestThreadParametersApply$", "-test.v", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), "OFASERVE_THREADS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "threads child ok") {
		t.Fatalf("child process: %v\n%s", err, out)
	}
}

func threadsChild(t *testing.T) {
	const single = `platform: "pytorch_libtorch" default_model_filename: "single.pt"
input [{ name: "x" data_type: TYPE_FP32 dims: [ 1 ] }] output [{ name: "y" data_type: TYPE_FP32 dims: [ 1 ] }]
`
	if torch.ConfiguredNumThreads() != 0 {
		t.Fatalf("a fresh process has intra-op threads configured: %d", torch.ConfiguredNumThreads())
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	loadLogged := func(name, params string) error {
		cfg, err := repository.ParseConfig(name+"/config.pbtxt", []byte(single+params))
		if err != nil {
			return err
		}
		if err := repository.Normalize(name+"/config.pbtxt", name, cfg, 0); err != nil {
			return err
		}
		m, err := Load(context.Background(), backend.LoadSpec{Name: name, Version: 1, VersionDir: modelDir, Config: cfg, Logger: log})
		if err == nil {
			err = m.Close(context.Background())
		}
		return err
	}
	intra := torch.NumThreads() + 1
	inter := torch.NumInteropThreads() + 1
	first := `parameters [ { key: "INTRA_OP_THREAD_COUNT" value: { string_value: "` + strconv.Itoa(intra) + `" } },
{ key: "INTER_OP_THREAD_COUNT" value: { string_value: "` + strconv.Itoa(inter) + `" } } ]`
	if err := loadLogged("first", first); err != nil {
		t.Fatal(err)
	}
	if torch.NumThreads() != intra || torch.ConfiguredNumThreads() != intra || torch.NumInteropThreads() != inter {
		t.Fatalf("after the first model: intra %d (configured %d), inter %d; want %d and %d",
			torch.NumThreads(), torch.ConfiguredNumThreads(), torch.NumInteropThreads(), intra, inter)
	}
	second := `parameters [ { key: "INTRA_OP_THREAD_COUNT" value: { string_value: "` + strconv.Itoa(intra+1) + `" } },
{ key: "INTER_OP_THREAD_COUNT" value: { string_value: "` + strconv.Itoa(inter+1) + `" } } ]`
	if err := loadLogged("second", second); err != nil {
		t.Fatalf("a model asking for other thread counts must still load: %v", err)
	}
	if torch.NumThreads() != intra || torch.NumInteropThreads() != inter {
		t.Fatalf("the second model changed the threads to %d / %d", torch.NumThreads(), torch.NumInteropThreads())
	}
	for _, want := range []string{"INTRA_OP_THREAD_COUNT asked=" + strconv.Itoa(intra+1), "INTER_OP_THREAD_COUNT asked=" + strconv.Itoa(inter+1)} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	// The same value again is no news.
	logs.Reset()
	if err := loadLogged("third", first); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "ignored") {
		t.Errorf("a model asking for the counts in effect was logged as ignored:\n%s", logs.String())
	}
	t.Log("threads child ok")
}
