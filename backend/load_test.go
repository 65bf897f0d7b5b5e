package backend

import (
	"strings"
	"testing"

	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

func TestDatatype(t *testing.T) {
	for _, c := range []struct {
		dt   modelconfig.DataType
		want string
	}{
		{modelconfig.DataType_TYPE_FP32, "FP32"},
		{modelconfig.DataType_TYPE_STRING, "BYTES"},
		{modelconfig.DataType_TYPE_BF16, "BF16"},
		{modelconfig.DataType_TYPE_BOOL, "BOOL"},
		{modelconfig.DataType_TYPE_UINT64, "UINT64"},
		{modelconfig.DataType_TYPE_INVALID, ""},
		{modelconfig.DataType(99), ""},
	} {
		if got := Datatype(c.dt); got != c.want {
			t.Errorf("Datatype(%v) = %q, want %q", c.dt, got, c.want)
		}
	}
	// Every config type but INVALID has a protocol name: its own, without
	// the prefix (STRING travels as BYTES).
	for v, name := range modelconfig.DataType_name {
		want := strings.TrimPrefix(name, "TYPE_")
		switch want {
		case "INVALID":
			want = ""
		case "STRING":
			want = "BYTES"
		}
		if got := Datatype(modelconfig.DataType(v)); got != want {
			t.Errorf("Datatype(%s) = %q, want %q", name, got, want)
		}
	}
}
