package simulated

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// Profile is the device's cost: t(b, L) = Base + b·PerSample + L·PerToken.
type Profile struct {
	Base, PerSample, PerToken time.Duration
}

// DefaultProfile is t(b) = 20 ms + 2.5 ms·b (see the package doc).
var DefaultProfile = Profile{Base: 20 * time.Millisecond, PerSample: 2500 * time.Microsecond}

// Parameter keys of the profile in config.pbtxt.
const (
	ParamBase      = "simulated_base_microseconds"
	ParamPerSample = "simulated_per_sample_microseconds"
	ParamPerToken  = "simulated_per_token_microseconds"
)

// Time is t(b, l).
func (p Profile) Time(b, l int) time.Duration {
	return p.Base + time.Duration(b)*p.PerSample + time.Duration(l)*p.PerToken
}

// ReadProfile reads the profile from a config's parameters: DefaultProfile where a key is absent, an error
// naming the key for a value that is not an integer >= 0 or an unknown simulated_* key.
func ReadProfile(params map[string]*modelconfig.ModelParameter) (Profile, error) {
	p := DefaultProfile
	fields := map[string]*time.Duration{ParamBase: &p.Base, ParamPerSample: &p.PerSample, ParamPerToken: &p.PerToken}
	for key, v := range params {
		dst, ok := fields[key]
		if !ok {
			if strings.HasPrefix(key, "simulated_") {
				return Profile{}, fmt.Errorf("simulated: unknown parameter '%s' (known: %s, %s, %s)", key, ParamBase, ParamPerSample, ParamPerToken)
			}
			continue
		}
		us, err := strconv.ParseInt(strings.TrimSpace(v.GetStringValue()), 10, 64)
		if err != nil || us < 0 || us > int64(time.Hour/time.Microsecond) {
			return Profile{}, fmt.Errorf("simulated: parameter '%s' must be an integer number of microseconds in [0, 3600000000], got '%s'", key, v.GetStringValue())
		}
		*dst = time.Duration(us) * time.Microsecond
	}
	return p, nil
}
