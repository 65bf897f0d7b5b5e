package instances

import (
	"strconv"

	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// Devices lists one device per model instance ("cpu" or "cuda:N"),
// instance groups in config order; a GPU group's instances are interleaved
// across its GPUs. A config without instance groups gets one CPU instance.
// Every model kind that runs TorchScript modules places them this way.
func Devices(cfg *modelconfig.ModelConfig) []string {
	var devs []string
	for _, g := range cfg.GetInstanceGroup() {
		count := max(1, int(g.GetCount()))
		if g.GetKind() == modelconfig.ModelInstanceGroup_KIND_GPU && len(g.GetGpus()) > 0 {
			for range count {
				for _, gpu := range g.GetGpus() {
					devs = append(devs, "cuda:"+strconv.Itoa(int(gpu)))
				}
			}
			continue
		}
		for range count {
			devs = append(devs, "cpu")
		}
	}
	if len(devs) == 0 {
		devs = []string{"cpu"}
	}
	return devs
}
