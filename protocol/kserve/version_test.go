package kserve

import (
	"strings"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
)

func TestParseVersion(t *testing.T) {
	if v, err := ParseVersion(""); v != 0 || err != nil {
		t.Errorf(`"" -> %d %v`, v, err)
	}
	if v, err := ParseVersion("12"); v != 12 || err != nil {
		t.Errorf(`"12" -> %d %v`, v, err)
	}
	_, err := ParseVersion("x1")
	if backend.CodeOf(err) != backend.CodeInvalidArg || !strings.Contains(err.Error(), "failed to get model version from specified version string 'x1'") {
		t.Errorf(`"x1" -> %v`, err)
	}
}
