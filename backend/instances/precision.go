package instances

import (
	"fmt"
	"strings"

	"github.com/ofaserve/ofaserve/libtorch"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// ParamPrecision is the config parameter that loads a model's modules in reduced precision:
// "float32" (or "fp32", the default), "float16" ("fp16") or "bfloat16" ("bf16"). libtorch.Options
// says what the conversion does: floating parameters, buffers and inputs take that type on the device,
// outputs of that type come back as float32, so one fp32 export serves every precision.
const ParamPrecision = "precision"

// Precision reads the config's precision parameter (absent or empty: float32); an unknown value is an
// error naming the parameter.
func Precision(cfg *modelconfig.ModelConfig) (libtorch.DType, error) {
	p, ok := cfg.GetParameters()[ParamPrecision]
	if !ok {
		return libtorch.Float32, nil
	}
	switch strings.ToLower(strings.TrimSpace(p.GetStringValue())) {
	case "", "float32", "fp32":
		return libtorch.Float32, nil
	case "float16", "fp16":
		return libtorch.Float16, nil
	case "bfloat16", "bf16":
		return libtorch.BFloat16, nil
	}
	return 0, fmt.Errorf("parameter '%s': unknown value '%s' (want float32, float16 or bfloat16)", ParamPrecision, p.GetStringValue())
}
