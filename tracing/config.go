package tracing

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is where traces go: Triton's JSON trace file, or OpenTelemetry spans exported over OTLP/HTTP.
type Mode string

// The trace modes of --trace-config mode=...
const (
	ModeTriton        Mode = "triton"
	ModeOpenTelemetry Mode = "opentelemetry"
)

// Config is what --trace-config sets at start-up: the mode, the global Setting every model starts from
// (and a cleared global setting returns to), and the OpenTelemetry exporter.
type Config struct {
	Mode    Mode
	Setting Setting
	OTel    OTelConfig
}

// OTelConfig is the "opentelemetry," group of --trace-config (docs: Triton's trace.md).
type OTelConfig struct {
	// URL receives the OTLP/HTTP export (default http://localhost:4318/v1/traces).
	URL string
	// Resource are resource attributes, key=value, in order (default service.name=triton-inference-server).
	Resource [][2]string
	// The batch span processor: spans queue up to BSPMaxQueueSize and leave in batches of at most
	// BSPMaxExportBatchSize, at least every BSPScheduleDelay.
	BSPMaxQueueSize       int
	BSPScheduleDelay      time.Duration
	BSPMaxExportBatchSize int
}

// DefaultConfig is tritonserver's: mode triton, level OFF, rate 1000, count -1 (no limit), log frequency 0
// (write at shutdown), no file; OpenTelemetry's defaults for the exporter.
func DefaultConfig() Config {
	return Config{
		Mode:    ModeTriton,
		Setting: Setting{Level: Off, Rate: 1000, Count: -1},
		OTel: OTelConfig{
			URL:             "http://localhost:4318/v1/traces",
			BSPMaxQueueSize: 2048, BSPScheduleDelay: 5 * time.Second, BSPMaxExportBatchSize: 512,
		},
	}
}

// ParseConfig reads --trace-config values over DefaultConfig, in order. A value is "setting=value" for a
// global setting (rate, level, count, mode) or "<mode>,setting=value" for a mode's own (triton: file,
// log-frequency; opentelemetry: url, resource, bsp_max_queue_size, bsp_schedule_delay in milliseconds,
// bsp_max_export_batch_size), as tritonserver spells them:
//
//	--trace-config mode=opentelemetry --trace-config opentelemetry,url=http://collector:4318/v1/traces
//	--trace-config triton,file=/tmp/trace.json --trace-config level=TIMESTAMPS --trace-config rate=1
//
// level may be given more than once (TIMESTAMPS and TENSORS add up; OFF stands alone).
func ParseConfig(values []string) (Config, error) {
	c := DefaultConfig()
	var levels []string
	resourceSet := false
	for _, v := range values {
		eq := strings.IndexByte(v, '=')
		if eq < 0 {
			return Config{}, fmt.Errorf("--trace-config %q: want [mode,]setting=value", v)
		}
		key, val := v[:eq], v[eq+1:]
		group := ""
		if i := strings.IndexByte(key, ','); i >= 0 {
			group, key = key[:i], key[i+1:]
		}
		var err error
		switch group {
		case "":
			err = c.setGlobal(key, val, &levels)
		case string(ModeTriton):
			err = c.setTriton(key, val)
		case string(ModeOpenTelemetry):
			if key == "resource" && !resourceSet {
				c.OTel.Resource, resourceSet = nil, true
			}
			err = c.setOTel(key, val)
		default:
			err = fmt.Errorf("unknown trace mode %q (triton or opentelemetry)", group)
		}
		if err != nil {
			return Config{}, fmt.Errorf("--trace-config %q: %w", v, err)
		}
	}
	if len(levels) > 0 {
		l, err := ParseLevels(levels)
		if err != nil {
			return Config{}, fmt.Errorf("--trace-config level: %w", err)
		}
		c.Setting.Level = l
	}
	if len(c.OTel.Resource) == 0 {
		c.OTel.Resource = [][2]string{{"service.name", "triton-inference-server"}}
	}
	if err := c.check(); err != nil {
		return Config{}, fmt.Errorf("--trace-config: %w", err)
	}
	return c, nil
}

func (c *Config) setGlobal(key, val string, levels *[]string) error {
	switch key {
	case "level":
		*levels = append(*levels, val)
	case "rate":
		r, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return fmt.Errorf("rate must be an integer in [0, %d], not %q", uint32(1<<32-1), val)
		}
		c.Setting.Rate = uint32(r)
	case "count":
		n, err := strconv.ParseInt(val, 10, 32)
		if err != nil || n < -1 {
			return fmt.Errorf("count must be -1 (no limit) or a non-negative integer, not %q", val)
		}
		c.Setting.Count = int32(n)
	case "mode":
		switch Mode(val) {
		case ModeTriton, ModeOpenTelemetry:
			c.Mode = Mode(val)
		default:
			return fmt.Errorf("mode must be triton or opentelemetry, not %q", val)
		}
	default:
		return fmt.Errorf("unknown global trace setting %q (level, rate, count, mode)", key)
	}
	return nil
}

func (c *Config) setTriton(key, val string) error {
	switch key {
	case "file":
		c.Setting.File = val
	case "log-frequency":
		f, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return fmt.Errorf("log-frequency must be a non-negative integer, not %q", val)
		}
		c.Setting.LogFrequency = uint32(f)
	default:
		return fmt.Errorf("unknown triton trace setting %q (file, log-frequency)", key)
	}
	return nil
}

func (c *Config) setOTel(key, val string) error {
	positive := func() (int, error) {
		n, err := strconv.Atoi(val)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%s must be a positive integer, not %q", key, val)
		}
		return n, nil
	}
	var err error
	switch key {
	case "url":
		if !strings.HasPrefix(val, "http://") && !strings.HasPrefix(val, "https://") {
			return fmt.Errorf("url must be an http:// or https:// URL, not %q", val)
		}
		c.OTel.URL = val
	case "resource":
		k, v, ok := strings.Cut(val, "=")
		if !ok || k == "" {
			return fmt.Errorf("resource must be key=value, not %q", val)
		}
		c.OTel.Resource = append(c.OTel.Resource, [2]string{k, v})
	case "bsp_max_queue_size":
		c.OTel.BSPMaxQueueSize, err = positive()
	case "bsp_max_export_batch_size":
		c.OTel.BSPMaxExportBatchSize, err = positive()
	case "bsp_schedule_delay":
		var ms int
		ms, err = positive()
		c.OTel.BSPScheduleDelay = time.Duration(ms) * time.Millisecond
	default:
		return fmt.Errorf("unknown opentelemetry trace setting %q (url, resource, bsp_max_queue_size, bsp_schedule_delay, bsp_max_export_batch_size)", key)
	}
	return err
}

func (c *Config) check() error {
	if c.OTel.BSPMaxExportBatchSize > c.OTel.BSPMaxQueueSize {
		return fmt.Errorf("bsp_max_export_batch_size (%d) must not exceed bsp_max_queue_size (%d)",
			c.OTel.BSPMaxExportBatchSize, c.OTel.BSPMaxQueueSize)
	}
	if c.Mode == ModeOpenTelemetry && c.Setting.Level&Tensors != 0 {
		return errTensorsOTel
	}
	if c.Mode == ModeTriton && c.Setting.Level != Off && c.Setting.File == "" {
		return errNoFile
	}
	return nil
}

var (
	errTensorsOTel = errors.New("the TENSORS trace level is not supported in opentelemetry mode")
	errNoFile      = errors.New("mode triton writes traces to a file: give --trace-config triton,file=PATH")
)
