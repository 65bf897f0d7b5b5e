package instances

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"

	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

func TestThreadParameters(t *testing.T) {
	for _, tc := range []struct {
		params     string
		intra, inr int
		err        string
	}{
		{"", 0, 0, ""},
		{`parameters { key: "INTRA_OP_THREAD_COUNT" value: { string_value: "1" } }`, 1, 0, ""},
		{`parameters { key: "INTER_OP_THREAD_COUNT" value: { string_value: " 3 " } }`, 0, 3, ""},
		{`parameters [ { key: "INTRA_OP_THREAD_COUNT" value: { string_value: "0" } }, { key: "INTER_OP_THREAD_COUNT" value: { string_value: "2" } } ]`, 0, 2, ""},
		{`parameters { key: "INTRA_OP_THREAD_COUNT" value: { string_value: "" } }`, 0, 0, "parameter 'INTRA_OP_THREAD_COUNT': '' is not an integer"},
		{`parameters { key: "INTRA_OP_THREAD_COUNT" value: { string_value: "4 threads" } }`, 0, 0, "parameter 'INTRA_OP_THREAD_COUNT': '4 threads' is not an integer"},
		{`parameters { key: "INTER_OP_THREAD_COUNT" value: { string_value: "0x2" } }`, 0, 0, "parameter 'INTER_OP_THREAD_COUNT'"},
		{`parameters { key: "INTER_OP_THREAD_COUNT" value: { string_value: "100000" } }`, 0, 0, "parameter 'INTER_OP_THREAD_COUNT': 100000 threads is out of range"},
		// Triton's names are case-sensitive; other keys are not ours to judge.
		{`parameters { key: "intra_op_thread_count" value: { string_value: "x" } }`, 0, 0, ""},
	} {
		cfg := &modelconfig.ModelConfig{}
		if err := prototext.Unmarshal([]byte(`platform: "pytorch_libtorch" `+tc.params), cfg); err != nil {
			t.Fatal(err)
		}
		intra, inter, err := ThreadParameters(cfg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: got %v, want an error containing %q", tc.params, err, tc.err)
			}
			continue
		}
		if err != nil || intra != tc.intra || inter != tc.inr {
			t.Errorf("%s: got %d, %d, %v; want %d, %d", tc.params, intra, inter, err, tc.intra, tc.inr)
		}
	}
}
