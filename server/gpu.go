package server

import (
	"fmt"
	"log/slog"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
)

// gpuCollector exports Triton's GPU gauges through NVML. It exists only when
// NVML could be initialised; on a machine without a GPU driver the gauges
// are simply absent.
type gpuCollector struct {
	devices []gpuDevice
	util    *prometheus.Desc
	memTot  *prometheus.Desc
	memUsed *prometheus.Desc
	power   *prometheus.Desc
	limit   *prometheus.Desc
}

type gpuDevice struct {
	dev  nvml.Device
	uuid string
}

// newGPUCollector returns nil (not an error) when NVML is unavailable.
func newGPUCollector(log *slog.Logger) (g *gpuCollector) {
	defer func() {
		if v := recover(); v != nil { // a broken libnvidia-ml must not stop the server
			log.Info("GPU metrics disabled", "reason", fmt.Sprint(v))
			g = nil
		}
	}()
	if ret := nvml.Init(); ret != nvml.SUCCESS {
		log.Info("GPU metrics disabled: NVML not available", "reason", nvml.ErrorString(ret))
		return nil
	}
	n, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS || n == 0 {
		_ = nvml.Shutdown()
		return nil
	}
	g = &gpuCollector{
		util:    prometheus.NewDesc("nv_gpu_utilization", "GPU utilization rate [0.0 - 1.0)", []string{"gpu_uuid"}, nil),
		memTot:  prometheus.NewDesc("nv_gpu_memory_total_bytes", "GPU total memory, in bytes", []string{"gpu_uuid"}, nil),
		memUsed: prometheus.NewDesc("nv_gpu_memory_used_bytes", "GPU used memory, in bytes", []string{"gpu_uuid"}, nil),
		power:   prometheus.NewDesc("nv_gpu_power_usage", "GPU power usage in watts", []string{"gpu_uuid"}, nil),
		limit:   prometheus.NewDesc("nv_gpu_power_limit", "GPU power management limit in watts", []string{"gpu_uuid"}, nil),
	}
	for i := range n {
		d, ret := nvml.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue
		}
		uuid, ret := d.GetUUID()
		if ret != nvml.SUCCESS {
			uuid = fmt.Sprintf("GPU-%d", i)
		}
		g.devices = append(g.devices, gpuDevice{dev: d, uuid: uuid})
	}
	if len(g.devices) == 0 {
		_ = nvml.Shutdown()
		return nil
	}
	log.Info("GPU metrics enabled", "gpus", len(g.devices))
	return g
}

func (g *gpuCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.util
	ch <- g.memTot
	ch <- g.memUsed
	ch <- g.power
	ch <- g.limit
}

func (g *gpuCollector) Collect(ch chan<- prometheus.Metric) {
	for _, d := range g.devices {
		if u, ret := d.dev.GetUtilizationRates(); ret == nvml.SUCCESS {
			ch <- prometheus.MustNewConstMetric(g.util, prometheus.GaugeValue, float64(u.Gpu)/100, d.uuid)
		}
		if m, ret := d.dev.GetMemoryInfo(); ret == nvml.SUCCESS {
			ch <- prometheus.MustNewConstMetric(g.memTot, prometheus.GaugeValue, float64(m.Total), d.uuid)
			ch <- prometheus.MustNewConstMetric(g.memUsed, prometheus.GaugeValue, float64(m.Used), d.uuid)
		}
		if p, ret := d.dev.GetPowerUsage(); ret == nvml.SUCCESS {
			ch <- prometheus.MustNewConstMetric(g.power, prometheus.GaugeValue, float64(p)/1000, d.uuid)
		}
		if p, ret := d.dev.GetEnforcedPowerLimit(); ret == nvml.SUCCESS {
			ch <- prometheus.MustNewConstMetric(g.limit, prometheus.GaugeValue, float64(p)/1000, d.uuid)
		}
	}
}
