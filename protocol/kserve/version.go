package kserve

import (
	"strconv"

	"github.com/ofaserve/ofaserve/backend"
)

// ParseVersion parses a protocol version string: "" means the latest (0).
func ParseVersion(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, backend.Errorf(backend.CodeInvalidArg, "failed to get model version from specified version string '%s' (value must be a non-negative integer)", s)
	}
	return v, nil
}
