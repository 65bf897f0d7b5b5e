// Package logging is the server's log output and Triton's logging extension over it: a slog.Handler whose
// levels and format change while the server runs (GET/POST /v2/logging, gRPC LogSettings) without a
// restart and without rebuilding the loggers handed out at start-up.
//
// Triton switches each severity on or off by itself (log_info, log_warning, log_error) and adds verbose
// records at log_verbose_level > 0. Here that is one Handler: a record at slog.LevelError or above is
// written when Error is on, at LevelWarn when Warning is on, at LevelInfo when Info is on, and below
// LevelInfo when VerboseLevel > 0 and the record is at LevelDebug or above, LevelDebug-1 at verbose level
// 2, and so on. Format is "text" (slog's text handler; Triton's "default" and "ISO8601" are read as it, its
// timestamps being ISO 8601 already) or "json". Every logger derived from the Handler (With, WithGroup)
// follows the current settings. The log file is chosen at start-up only; an update naming it is refused,
// as Triton refuses it.
package logging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync/atomic"
)

// Settings are the logging extension's settings.
type Settings struct {
	File                 string // where the log goes ("" is standard error); reported, never changed
	Info, Warning, Error bool
	VerboseLevel         uint32
	Format               string // "text" or "json"
}

// Control owns the settings and the handler that follows them. It is safe for concurrent use.
type Control struct {
	cur atomic.Pointer[Settings]
	h   *handler
}

// every lets the wrapped handlers write whatever the Control's Enabled let through.
const every = slog.Level(math.MinInt32)

// New returns a Control writing to w with the initial settings s (its Format normalized by ParseFormat).
func New(w io.Writer, s Settings) (*Control, error) {
	f, err := ParseFormat(s.Format)
	if err != nil {
		return nil, err
	}
	s.Format = f
	c := &Control{}
	c.cur.Store(&s)
	opts := &slog.HandlerOptions{Level: every}
	c.h = &handler{c: c, text: slog.NewTextHandler(w, opts), json: slog.NewJSONHandler(w, opts)}
	return c, nil
}

// Logger returns a logger over the Control's handler.
func (c *Control) Logger() *slog.Logger { return slog.New(c.h) }

// Handler returns the Control's handler.
func (c *Control) Handler() slog.Handler { return c.h }

// Settings returns the current settings.
func (c *Control) Settings() Settings { return *c.cur.Load() }

// Update is a change to the settings: the fields that are not nil take their values.
type Update struct {
	Info, Warning, Error *bool
	VerboseLevel         *uint32
	Format               *string
}

// Apply applies u and returns the settings now in force.
func (c *Control) Apply(u Update) Settings {
	for {
		old := c.cur.Load()
		s := *old
		set := func(dst *bool, v *bool) {
			if v != nil {
				*dst = *v
			}
		}
		set(&s.Info, u.Info)
		set(&s.Warning, u.Warning)
		set(&s.Error, u.Error)
		if u.VerboseLevel != nil {
			s.VerboseLevel = *u.VerboseLevel
		}
		if u.Format != nil {
			s.Format = *u.Format
		}
		if c.cur.CompareAndSwap(old, &s) {
			return s
		}
	}
}

// ErrFileUpdate is the error of an update that names log_file (Triton's message).
var ErrFileUpdate = errors.New("log file location can not be updated through network protocol")

// ParseFormat normalizes a log format name: "text" (also Triton's "default" and "ISO8601") or "json".
func ParseFormat(f string) (string, error) {
	switch f {
	case "text", "default", "ISO8601", "":
		return "text", nil
	case "json":
		return "json", nil
	}
	return "", fmt.Errorf("invalid argument for log_format, got: %s (text, json, or Triton's default or ISO8601)", f)
}

// ParseUpdate reads the settings of a logging request, as protocol/kserve decodes them from the HTTP body
// or the gRPC message: log_info, log_warning, log_error booleans, log_verbose_level a non-negative integer,
// log_format a string; a null value leaves its setting as it is, as Triton does. It refuses log_file and
// any other name.
func ParseUpdate(values map[string]any) (Update, error) {
	var u Update
	for name, v := range values {
		if name == "log_file" {
			if v == nil {
				continue
			}
			return Update{}, ErrFileUpdate
		}
		if v == nil {
			if !known(name) {
				return Update{}, unknown(name)
			}
			continue
		}
		switch name {
		case "log_info", "log_warning", "log_error":
			b, ok := v.(bool)
			if !ok {
				return Update{}, fmt.Errorf("log setting '%s' must be a boolean", name)
			}
			switch name {
			case "log_info":
				u.Info = &b
			case "log_warning":
				u.Warning = &b
			default:
				u.Error = &b
			}
		case "log_verbose_level":
			n, ok := v.(json.Number)
			lvl, err := strconv.ParseUint(string(n), 10, 32)
			if !ok || err != nil {
				return Update{}, fmt.Errorf("log setting 'log_verbose_level' must be an integer in [0, %d]", uint32(math.MaxUint32))
			}
			l := uint32(lvl)
			u.VerboseLevel = &l
		case "log_format":
			s, ok := v.(string)
			if !ok {
				return Update{}, fmt.Errorf("log setting 'log_format' must be a string")
			}
			f, err := ParseFormat(s)
			if err != nil || s == "" {
				return Update{}, fmt.Errorf("invalid argument for log_format, got: %s (text, json, or Triton's default or ISO8601)", s)
			}
			u.Format = &f
		default:
			return Update{}, unknown(name)
		}
	}
	return u, nil
}

func known(name string) bool {
	switch name {
	case "log_info", "log_warning", "log_error", "log_verbose_level", "log_format":
		return true
	}
	return false
}

func unknown(name string) error {
	return fmt.Errorf("unknown log setting '%s' (log_info, log_warning, log_error, log_verbose_level, log_format)", name)
}

// handler decides from the Control's current settings whether a record is written, and in which format.
type handler struct {
	c          *Control
	text, json slog.Handler
}

func (h *handler) Enabled(_ context.Context, l slog.Level) bool {
	return enabled(h.c.cur.Load(), l)
}

func enabled(s *Settings, l slog.Level) bool {
	switch {
	case l >= slog.LevelError:
		return s.Error
	case l >= slog.LevelWarn:
		return s.Warning
	case l >= slog.LevelInfo:
		return s.Info
	}
	return s.VerboseLevel > 0 && int64(l) >= int64(slog.LevelDebug)-int64(s.VerboseLevel-1)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	s := h.c.cur.Load()
	if !enabled(s, r.Level) { // the settings may have changed since Enabled
		return nil
	}
	if s.Format == "json" {
		return h.json.Handle(ctx, r)
	}
	return h.text.Handle(ctx, r)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &handler{c: h.c, text: h.text.WithAttrs(attrs), json: h.json.WithAttrs(attrs)}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{c: h.c, text: h.text.WithGroup(name), json: h.json.WithGroup(name)}
}
