package chaos

import (
	"bytes"
	"errors"
	"image/jpeg"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseVmRSS(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     int64
		err      bool
	}{
		{"typical", "Name:\tofaserve\nVmPeak:\t 999 kB\nVmRSS:\t  325120 kB\nRssAnon:\t 1 kB\n", 325120 * 1024, false},
		{"zero", "VmRSS:\t0 kB\n", 0, false},
		{"missing", "Name:\tx\nVmSize:\t12 kB\n", 0, true},
		{"no unit", "VmRSS:\t12\n", 0, true},
		{"other unit", "VmRSS:\t12 MB\n", 0, true},
		{"not a number", "VmRSS:\tlots kB\n", 0, true},
		{"negative", "VmRSS:\t-4 kB\n", 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseVmRSS([]byte(c.in))
			if (err != nil) != c.err || got != c.want {
				t.Fatalf("ParseVmRSS = %d, %v; want %d, error %v", got, err, c.want, c.err)
			}
		})
	}
}

func FuzzParseVmRSS(f *testing.F) {
	f.Add([]byte("VmRSS:\t 12 kB\n"))
	f.Add([]byte("VmRSS:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseVmRSS(b)
		if err == nil && v < 0 {
			t.Fatalf("negative RSS %d from %q", v, b)
		}
	})
}

func TestParseCPUTicks(t *testing.T) {
	stat := "4242 (ofa serve) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 30 0 1 1 1\n"
	got, err := ParseCPUTicks([]byte(stat))
	if err != nil || got != 175 {
		t.Fatalf("ParseCPUTicks = %d, %v; want 175 (utime 150 + stime 25)", got, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 u s 1"} {
		if _, err := ParseCPUTicks([]byte(bad)); err == nil {
			t.Errorf("ParseCPUTicks(%q) accepted", bad)
		}
	}
}

func FuzzParseCPUTicks(f *testing.F) {
	f.Add([]byte("1 (a b) S 1 1 1 0 -1 0 0 0 0 0 3 4 0 0\n"))
	f.Add([]byte("1 (x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseCPUTicks(b)
		if err == nil && bytes.LastIndexByte(b, ')') < 0 {
			t.Fatalf("accepted %q (no command field) as %d", b, v)
		}
	})
}

func TestReadRSSOfThisProcess(t *testing.T) {
	s := StartSampler(os.Getpid(), time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	first, peak, last := s.Stop()
	if first <= 0 || peak < first || peak < last || last <= 0 {
		t.Fatalf("sampler first %d peak %d last %d", first, peak, last)
	}
	z0, z1, z2 := StartSampler(0, time.Millisecond).Stop()
	if z0 != 0 || z1 != 0 || z2 != 0 {
		t.Fatalf("a sampler without a pid reported %d %d %d", z0, z1, z2)
	}
}

func TestUniformJPEGHeaderClaimsItsSize(t *testing.T) {
	for _, c := range []struct{ w, h int }{{8, 8}, {2000, 1000}, {1, 3}} {
		b, err := UniformJPEG(c.w, c.h)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
		if err != nil || cfg.Width != c.w || cfg.Height != c.h {
			t.Fatalf("%dx%d: header says %dx%d (%v)", c.w, c.h, cfg.Width, cfg.Height, err)
		}
		img, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%dx%d: not a valid JPEG: %v", c.w, c.h, err)
		}
		if g := img.Bounds(); g.Dx() != c.w || g.Dy() != c.h {
			t.Fatalf("%dx%d decoded to %v", c.w, c.h, g)
		}
		// A few bits per 8x8 block: far below one byte per pixel.
		if px := c.w * c.h; px >= 1_000_000 && len(b) > px/50 {
			t.Fatalf("%dx%d: %d bytes, want under %d", c.w, c.h, len(b), px/50)
		}
	}
	for _, bad := range [][2]int{{0, 8}, {8, -1}, {70000, 8}} {
		if _, err := UniformJPEG(bad[0], bad[1]); err == nil {
			t.Errorf("UniformJPEG(%v) accepted", bad)
		}
	}
}

func TestTallyAccounting(t *testing.T) {
	var a Tally
	a.Add("200", true, false)
	a.Add("200", false, true) // a wrong answer: lost
	a.Add("500", false, false)
	a.Add("transport", false, true)
	var b Tally
	b.Add("503", true, false)
	a.Merge(b)
	if a.Tried != 5 || a.Handled != 2 || a.Lost != 2 {
		t.Fatalf("tally %+v", a)
	}
	if got, want := a.CodesNote(), "200×2 500×1 503×1 transport×1"; got != want {
		t.Fatalf("CodesNote = %q, want %q", got, want)
	}
}

func TestResultPass(t *testing.T) {
	ok := Result{Case: "x", Tried: 3, Handled: 3, Figures: []Figure{{Name: "f", Target: "< 1", Met: true}, {Name: "info"}}}
	for _, c := range []struct {
		name string
		mod  func(*Result)
		want bool
	}{
		{"all handled, targets met", func(*Result) {}, true},
		{"one not handled", func(r *Result) { r.Handled = 2 }, false},
		{"one lost", func(r *Result) { r.Lost = 1 }, false},
		{"target missed", func(r *Result) { r.Figures[0].Met = false }, false},
		{"nothing tried", func(r *Result) { r.Tried, r.Handled = 0, 0 }, false},
		{"could not run", func(r *Result) { r.Err = errors.New("setup") }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := ok
			r.Figures = append([]Figure(nil), ok.Figures...)
			c.mod(&r)
			if got := r.Pass(); got != c.want {
				t.Fatalf("Pass = %v, want %v", got, c.want)
			}
		})
	}
}

func TestFormatTable(t *testing.T) {
	rs := []Result{
		{Case: "queue-full", Tried: 100, Handled: 100, RSSBefore: 320e6, RSSPeak: 410e6, RSSAfter: 330e6, Elapsed: 1500 * time.Millisecond,
			Figures: []Figure{{Name: "goodput ratio", Value: "0.95", Target: "≥ 0.90", Met: true}}},
		{Case: "bad-token-ids", Tried: 2200, Handled: 1882, Lost: 318, Notes: []string{"good: 200×1682 500×318"}},
		{Case: "grpc-300MB", Err: errors.New("no gRPC address")},
	}
	var b bytes.Buffer
	if err := Format(&b, rs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "case") || !strings.Contains(lines[0], "handled") || !strings.Contains(lines[0], "RSS MB before") {
		t.Fatalf("header %q", lines[0])
	}
	for _, want := range []string{
		"queue-full     100    100      0     320            410   330    1.5s  PASS",
		"bad-token-ids  2200   1882     318   -              -     -      0.0s  FAIL",
		"grpc-300MB     0      0        0     -              -     -      0.0s  ERROR",
		"  goodput ratio: 0.95  target ≥ 0.90 met",
		"  good: 200×1682 500×318",
		"  error: no gRPC address",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestClose(t *testing.T) {
	if !Close([]float32{1, -2, 3}, []float32{1.0001, -2, 3}, 1e-3) {
		t.Error("close logits refused")
	}
	if Close([]float32{1, -2, 3}, []float32{1.1, -2, 3}, 1e-3) {
		t.Error("different logits accepted")
	}
	if Close(nil, nil, 1e-3) || Close([]float32{1}, []float32{1, 2}, 1e-3) {
		t.Error("empty or mismatched lengths accepted")
	}
}

func TestBadIDsKinds(t *testing.T) {
	seen := map[string]bool{}
	for k := range 3 {
		ids, kind := BadIDs(k, 1)
		seen[kind] = true
		switch kind {
		case "id 1e9":
			if ids[5] != 1e9 {
				t.Errorf("%s: ids[5] = %d", kind, ids[5])
			}
		case "id -5":
			if ids[5] != -5 {
				t.Errorf("%s: ids[5] = %d", kind, ids[5])
			}
		case "length 2000":
			if len(ids) != 2000 {
				t.Errorf("%s: %d ids", kind, len(ids))
			}
		}
	}
	if len(seen) != 3 {
		t.Fatalf("kinds %v", seen)
	}
	for _, v := range TokenIDs(3, 64) {
		if v < 0 || v >= 1000 {
			t.Fatalf("good id %d out of [0, 1000)", v)
		}
	}
}

func TestReadCPUTimeOfThisProcess(t *testing.T) {
	if v, err := ReadCPUTime(os.Getpid()); err != nil || v < 0 {
		t.Fatalf("ReadCPUTime(self) = %v, %v", v, err)
	}
	if _, err := ReadCPUTime(-1); err == nil {
		t.Fatal("ReadCPUTime(-1) accepted")
	}
}

func TestPerEach(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		n    int
		want string
	}{{time.Second, 4, "250ms"}, {time.Second, 0, "-"}, {30 * time.Millisecond, 1000, "30µs"}} {
		if got := perEach(c.d, c.n); got != c.want {
			t.Errorf("perEach(%v, %d) = %q, want %q", c.d, c.n, got, c.want)
		}
	}
}

func TestWindowP99s(t *testing.T) {
	var lats []timed
	for i := range 100 {
		lats = append(lats, timed{at: time.Duration(i) * 10 * time.Millisecond, lat: time.Duration(i%50+1) * time.Millisecond})
	}
	// Windows of 250 ms over 1 s: 25 requests each; latencies 1..25, 26..50, 1..25, 26..50 ms.
	if got, want := windowP99s(lats, 250*time.Millisecond, time.Second), "25 (25), 50 (25), 25 (25), 50 (25)"; got != want {
		t.Fatalf("windowP99s = %q, want %q", got, want)
	}
	if got, want := windowP99s(lats, 250*time.Millisecond, 1100*time.Millisecond), "25 (25), 50 (25), 25 (25), 50 (25)"; got != want {
		t.Fatalf("a partial last window: %q, want %q", got, want)
	}
	if got := windowP99s(nil, 0, time.Second); got != "-" {
		t.Fatalf("no window: %q", got)
	}
}
