package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.b.String()
	s.b.Reset()
	return o
}

func ptr[T any](v T) *T { return &v }

// A change applies at once to every logger handed out before it, derived ones included.
func TestControlChangesWhatIsLogged(t *testing.T) {
	var out syncBuf
	c, err := New(&out, Settings{Info: true, Warning: true, Error: true, Format: "default"})
	if err != nil {
		t.Fatal(err)
	}
	log := c.Logger()
	derived := log.With("model", "m").WithGroup("g")
	emit := func() string {
		log.Debug("d1")
		log.Log(context.Background(), slog.LevelDebug-1, "d2")
		log.Info("i")
		derived.Warn("w", "k", 1)
		log.Error("e")
		return out.take()
	}
	has := func(s string, want ...string) {
		t.Helper()
		for _, w := range []string{"msg=d1", "msg=d2", "msg=i", "msg=w", "msg=e"} {
			in := strings.Contains(s, w)
			should := false
			for _, x := range want {
				should = should || x == w
			}
			if in != should {
				t.Errorf("%q in the output = %v, want %v:\n%s", w, in, should, s)
			}
		}
	}
	has(emit(), "msg=i", "msg=w", "msg=e")
	c.Apply(Update{VerboseLevel: ptr[uint32](1)})
	has(emit(), "msg=d1", "msg=i", "msg=w", "msg=e")
	c.Apply(Update{VerboseLevel: ptr[uint32](2), Info: ptr(false)})
	has(emit(), "msg=d1", "msg=d2", "msg=w", "msg=e")
	c.Apply(Update{VerboseLevel: ptr[uint32](0), Warning: ptr(false), Error: ptr(false), Info: ptr(true)})
	has(emit(), "msg=i")
	c.Apply(Update{Warning: ptr(true), Format: ptr("json")})
	derived.Warn("w", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal([]byte(out.take()), &rec); err != nil || rec["model"] != "m" || rec["msg"] != "w" {
		t.Fatalf("derived logger after the switch to json wrote %v (%v)", rec, err)
	}
	if s := c.Settings(); s.Format != "json" || !s.Info || !s.Warning || s.Error || s.VerboseLevel != 0 {
		t.Fatalf("settings %+v", s)
	}
}

func TestParseUpdate(t *testing.T) {
	u, err := ParseUpdate(map[string]any{"log_info": false, "log_verbose_level": json.Number("3"), "log_format": "ISO8601",
		"log_error": nil, "log_file": nil})
	if err != nil || u.Info == nil || *u.Info || *u.VerboseLevel != 3 || *u.Format != "text" || u.Error != nil || u.Warning != nil {
		t.Fatalf("%+v %v", u, err)
	}
	for _, tc := range []struct {
		in  map[string]any
		msg string
	}{
		{map[string]any{"log_file": "/tmp/x"}, "log file location can not be updated through network protocol"},
		{map[string]any{"log_info": "yes"}, "'log_info' must be a boolean"},
		{map[string]any{"log_verbose_level": json.Number("-1")}, "'log_verbose_level' must be an integer in [0, 4294967295]"},
		{map[string]any{"log_verbose_level": json.Number("1.5")}, "'log_verbose_level' must be an integer"},
		{map[string]any{"log_verbose_level": true}, "'log_verbose_level' must be an integer"},
		{map[string]any{"log_format": "xml"}, "invalid argument for log_format, got: xml"},
		{map[string]any{"log_format": ""}, "invalid argument for log_format, got: "},
		{map[string]any{"log_format": 1}, "'log_format' must be a string"},
		{map[string]any{"log_colour": true}, "unknown log setting 'log_colour'"},
		{map[string]any{"log_colour": nil}, "unknown log setting 'log_colour'"},
	} {
		if _, err := ParseUpdate(tc.in); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v: %v, want an error containing %q", tc.in, err, tc.msg)
		}
	}
	if _, err := ParseUpdate(map[string]any{"log_file": "x"}); !errors.Is(err, ErrFileUpdate) {
		t.Error("log_file is not ErrFileUpdate")
	}
	if _, err := New(&bytes.Buffer{}, Settings{Format: "xml"}); err == nil {
		t.Error("New accepted format xml")
	}
}

// FuzzParseUpdate: any decoded logging request is either refused or gives an update Apply can take.
func FuzzParseUpdate(f *testing.F) {
	f.Add("log_verbose_level", "1", "log_format", "json")
	f.Add("log_info", "x", "log_file", "")
	f.Fuzz(func(t *testing.T, k1, n, k2, s string) {
		u, err := ParseUpdate(map[string]any{k1: json.Number(n), k2: s})
		if err != nil {
			return
		}
		c, _ := New(&bytes.Buffer{}, Settings{})
		if got := c.Apply(u); got.Format != "text" && got.Format != "json" {
			t.Fatalf("format %q accepted", got.Format)
		}
	})
}
