package kserve

import (
	"strconv"

	"github.com/ofaserve/ofaserve/backend"
)

// LatestVersion is the version a request gets when it names none: the
// highest ready version. Version folders start at 1, so 0 is never a real
// version; every layer (frontends, repository) uses this one convention,
// and an index row with no version known carries it too.
const LatestVersion int64 = 0

// ParseVersion parses a protocol version string: "" and "0" are
// LatestVersion; anything but a non-negative integer is INVALID_ARG.
func ParseVersion(s string) (int64, error) {
	if s == "" {
		return LatestVersion, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, backend.Errorf(backend.CodeInvalidArg, "failed to get model version from specified version string '%s' (value must be a non-negative integer)", s)
	}
	return v, nil
}
