package tracing

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	def := DefaultConfig()
	def.OTel.Resource = [][2]string{{"service.name", "triton-inference-server"}}
	withTriton := func(f func(*Config)) Config { c := def; f(&c); return c }
	for _, tc := range []struct {
		args []string
		want Config
	}{
		{nil, def},
		{[]string{"triton,file=/tmp/t.json", "triton,log-frequency=50", "rate=100", "level=TIMESTAMPS", "count=100"},
			withTriton(func(c *Config) {
				c.Setting = Setting{Level: Timestamps, Rate: 100, Count: 100, LogFrequency: 50, File: "/tmp/t.json"}
			})},
		{[]string{"triton,file=t", "level=TIMESTAMPS", "level=TENSORS"},
			withTriton(func(c *Config) { c.Setting.File, c.Setting.Level = "t", Timestamps|Tensors })},
		{[]string{"mode=opentelemetry", "opentelemetry,url=http://collector:4318/v1/traces", "level=TIMESTAMPS", "rate=0",
			"opentelemetry,resource=service.name=ofa", "opentelemetry,resource=env=prod",
			"opentelemetry,bsp_max_queue_size=10", "opentelemetry,bsp_schedule_delay=100", "opentelemetry,bsp_max_export_batch_size=5"},
			withTriton(func(c *Config) {
				c.Mode, c.Setting.Level, c.Setting.Rate = ModeOpenTelemetry, Timestamps, 0
				c.OTel = OTelConfig{URL: "http://collector:4318/v1/traces", Resource: [][2]string{{"service.name", "ofa"}, {"env", "prod"}},
					BSPMaxQueueSize: 10, BSPScheduleDelay: 100 * time.Millisecond, BSPMaxExportBatchSize: 5}
			})},
		{[]string{"mode=opentelemetry"}, withTriton(func(c *Config) { c.Mode = ModeOpenTelemetry })},
		{[]string{"count=-1", "count=0"}, withTriton(func(c *Config) { c.Setting.Count = 0 })},
	} {
		got, err := ParseConfig(tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.args, got, tc.want)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"level"}, "want [mode,]setting=value"},
		{[]string{"level=LOUD", "triton,file=x"}, "unknown trace level 'LOUD'"},
		{[]string{"level=OFF", "level=TIMESTAMPS", "triton,file=x"}, "Expect only one trace level 'OFF'"},
		{[]string{"rate=-1"}, "rate must be an integer"},
		{[]string{"rate=4294967296"}, "rate must be an integer"},
		{[]string{"count=-2"}, "count must be -1"},
		{[]string{"mode=jaeger"}, "mode must be triton or opentelemetry"},
		{[]string{"colour=red"}, "unknown global trace setting"},
		{[]string{"zipkin,url=x"}, "unknown trace mode \"zipkin\""},
		{[]string{"triton,log-frequency=x"}, "log-frequency must be"},
		{[]string{"triton,url=x"}, "unknown triton trace setting"},
		{[]string{"opentelemetry,url=collector:4318"}, "must be an http:// or https:// URL"},
		{[]string{"opentelemetry,resource=novalue"}, "resource must be key=value"},
		{[]string{"opentelemetry,bsp_max_queue_size=0"}, "must be a positive integer"},
		{[]string{"opentelemetry,bsp_max_export_batch_size=4096"}, "must not exceed bsp_max_queue_size"},
		{[]string{"mode=opentelemetry", "level=TENSORS"}, "TENSORS trace level is not supported in opentelemetry mode"},
		{[]string{"level=TIMESTAMPS"}, "give --trace-config triton,file=PATH"},
	} {
		_, err := ParseConfig(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.msg)
		}
	}
}

// ParseConfig reads operator input: it never panics, and what it accepts is a usable configuration.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"rate=1", "level=TIMESTAMPS", "triton,file=x", "opentelemetry,resource=a=b", "mode=opentelemetry", ",=", "count=-1"} {
		f.Add(s, "triton,file=/tmp/x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		c, err := ParseConfig([]string{a, b})
		if err != nil {
			return
		}
		if c.Mode != ModeTriton && c.Mode != ModeOpenTelemetry {
			t.Fatalf("mode %q accepted", c.Mode)
		}
		if c.Setting.Count < -1 || c.OTel.BSPMaxExportBatchSize > c.OTel.BSPMaxQueueSize || len(c.OTel.Resource) == 0 {
			t.Fatalf("accepted an unusable config %+v", c)
		}
		if c.Mode == ModeTriton && c.Setting.Level != Off && c.Setting.File == "" {
			t.Fatalf("accepted a level without a file: %+v", c)
		}
	})
}
