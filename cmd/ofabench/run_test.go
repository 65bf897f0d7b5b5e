package main

import (
	"strings"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/bench/measure"
	"github.com/ofaserve/ofaserve/bench/report"
)

func TestParseBenchFlags(t *testing.T) {
	f, err := parseBenchFlags([]string{"-m", "m", "-i", "grpc", "--concurrency-range", "1:8:2x", "--shape", "A:3", "--shape", "B:1,2"})
	if err != nil {
		t.Fatal(err)
	}
	if f.url != "127.0.0.1:8001" || f.outFmt != "json" || len(f.shapes) != 2 || f.label != "m grpc" {
		t.Errorf("defaults: %+v", f)
	}
	bad := map[string][]string{
		"no model":       {},
		"both ranges":    {"-m", "m", "--concurrency-range", "1", "--request-rate-range", "5"},
		"bad protocol":   {"-m", "m", "-i", "udp"},
		"bad format":     {"-m", "m", "--input-tensor-format", "xml"},
		"images alone":   {"-m", "m", "--images", "dir"},
		"zero batch":     {"-m", "m", "-b", "0"},
		"bad data":       {"-m", "m", "--input-data", "file"},
		"bad distributn": {"-m", "m", "--request-distribution", "burst"},
		"stray argument": {"-m", "m", "extra"},
		"zero interval":  {"-m", "m", "--measurement-interval", "0"},
	}
	for name, args := range bad {
		if _, err := parseBenchFlags(args); err == nil {
			t.Errorf("%s: %v should fail", name, args)
		}
	}
}

func TestParsePrecision(t *testing.T) {
	for _, ok := range []string{"fp32", "fp16", "bf16"} {
		if _, err := parsePrecision(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	if _, err := parsePrecision("int8"); err == nil || !strings.Contains(err.Error(), "int8") {
		t.Errorf("int8: %v", err)
	}
}

func TestPrintDevice(t *testing.T) {
	d := &report.Device{Batch: 16, IdealPerSec: 16 / 0.060}
	for _, tc := range []struct {
		name string
		w    measure.Window
		want []string
	}{
		{"server counted", measure.Window{Duration: 4 * time.Second, Throughput: 250,
			Server: &measure.ServerSplit{Inferences: 1040}}, []string{"device efficiency: 0.975", "260.0 samples/s executed", "client-counted 0.937"}},
		{"client only", measure.Window{Duration: 4 * time.Second, Throughput: 250},
			[]string{"client-counted, no server statistics): 0.937"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			printDevice(&b, d, tc.w)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("%q lacks %q", b.String(), w)
				}
			}
		})
	}
}
