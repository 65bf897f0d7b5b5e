//lint:file-ignore ST1005 Triton's trace-setting messages are matched word for word by clients and its qa tests.

package tracing

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync"
)

// Level is a set of trace levels (Triton's TRITONSERVER_InferenceTraceLevel): Off, or Timestamps and/or
// Tensors.
type Level uint8

// The trace levels.
const (
	Off        Level = 0
	Timestamps Level = 1 << 0 // the request's timestamps
	Tensors    Level = 1 << 1 // its input and output tensors
)

// Strings is the level as the trace extension writes it: ["OFF"], or the levels that are on.
func (l Level) Strings() []string {
	if l == Off {
		return []string{"OFF"}
	}
	var out []string
	if l&Timestamps != 0 {
		out = append(out, "TIMESTAMPS")
	}
	if l&Tensors != 0 {
		out = append(out, "TENSORS")
	}
	return out
}

// ParseLevels reads trace level names: "OFF" alone, or any of "TIMESTAMPS" and "TENSORS".
func ParseLevels(names []string) (Level, error) {
	var l Level
	for _, n := range names {
		switch n {
		case "OFF":
			if len(names) != 1 {
				return 0, fmt.Errorf("Expect only one trace level 'OFF' is specified")
			}
		case "TIMESTAMPS":
			l |= Timestamps
		case "TENSORS":
			l |= Tensors
		default:
			return 0, fmt.Errorf("unknown trace level '%s' (OFF, TIMESTAMPS or TENSORS)", n)
		}
	}
	if len(names) == 0 {
		return 0, fmt.Errorf("a trace level is needed (OFF, TIMESTAMPS or TENSORS)")
	}
	return l, nil
}

// Setting is one complete trace setting (Triton's trace extension): what is traced (Level), one request in
// Rate (0: none, except requests that carry an OpenTelemetry context in that mode), how many traces remain
// (Count, -1: no limit), and how traces are written (File, LogFrequency: every that many traces to
// File.<n>, or all to File at shutdown when 0).
type Setting struct {
	Level        Level
	Rate         uint32
	Count        int32
	LogFrequency uint32
	File         string
}

// field is one updatable setting.
type field uint8

const (
	fLevel field = 1 << iota
	fRate
	fCount
	fLogFrequency
)

// Update is a change to a setting as a trace-setting request asks it: the fields in Set take their values,
// those in Clear return to the default (a model's to the global setting, the global one to the start-up
// configuration). An empty Update of a model's setting removes all of its own values.
type Update struct {
	Set, Clear   field
	Level        Level
	Rate         uint32
	Count        int32
	LogFrequency uint32
}

// ErrFileUpdate is the error of a request that names trace_file: like Triton, the server never lets a
// client choose where it writes.
var ErrFileUpdate = fmt.Errorf("trace file location can not be updated through network protocol")

// ParseUpdate reads the settings of a trace-setting request, as protocol/kserve decodes them from the HTTP
// body or the gRPC message: a nil value clears a setting; trace_level is a list of level names; the others
// are one string each (a one-element list is read as that string). Messages follow Triton's.
func ParseUpdate(values map[string]any) (Update, error) {
	var u Update
	for name, v := range values {
		if name == "trace_file" {
			return Update{}, ErrFileUpdate
		}
		f, ok := map[string]field{"trace_level": fLevel, "trace_rate": fRate, "trace_count": fCount, "log_frequency": fLogFrequency}[name]
		if !ok {
			return Update{}, fmt.Errorf("unknown trace setting '%s' (trace_level, trace_rate, trace_count, log_frequency)", name)
		}
		if v == nil {
			u.Clear |= f
			continue
		}
		if f == fLevel {
			names, ok := v.([]string)
			if !ok {
				return Update{}, fmt.Errorf("'trace_level' must be an array of strings")
			}
			l, err := ParseLevels(names)
			if err != nil {
				return Update{}, err
			}
			u.Level, u.Set = l, u.Set|f
			continue
		}
		s, ok := scalar(v)
		if !ok {
			return Update{}, fmt.Errorf("'%s' must be a string", name)
		}
		switch f {
		case fRate, fLogFrequency:
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				if _, ierr := strconv.ParseInt(s, 10, 64); !isRange(err) && ierr != nil && !isRange(ierr) {
					return Update{}, fmt.Errorf("Unable to parse '%s', got: %s", name, s)
				}
				return Update{}, fmt.Errorf("Unable to parse '%s', value is out of range [ 0, %d ], got: %s", name, uint32(math.MaxUint32), s)
			}
			if f == fRate {
				u.Rate = uint32(n)
			} else {
				u.LogFrequency = uint32(n)
			}
		case fCount:
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil && !isRange(err) {
				return Update{}, fmt.Errorf("Unable to parse 'trace_count', got: %s", s)
			}
			if err == nil && n < -1 {
				return Update{}, fmt.Errorf("Unable to parse 'trace_count'. Expecting value >= -1, got:%s", s)
			}
			if err != nil || n > math.MaxInt32 {
				return Update{}, fmt.Errorf("Unable to parse 'trace_count', value is out of range [ -1, %d ], got: %s", math.MaxInt32, s)
			}
			u.Count = int32(n)
		}
		u.Set |= f
	}
	return u, nil
}

func isRange(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case []string:
		if len(x) == 1 {
			return x[0], true
		}
	}
	return "", false
}

// own is a setting with the fields it holds itself; the others come from the global setting.
type own struct {
	has  field
	set  Setting
	seen uint64 // requests sampled against this setting's rate
}

// settings are the global setting and each model's own values, and the sampling state.
type settings struct {
	mu      sync.Mutex
	initial Setting
	global  own
	models  map[string]*own
}

func newSettings(initial Setting) *settings {
	return &settings{initial: initial, global: own{has: fLevel | fRate | fCount | fLogFrequency, set: initial}, models: map[string]*own{}}
}

// effective merges a model's own values over the global setting (mu held).
func (s *settings) effective(o *own) Setting {
	eff := s.global.set
	if o == nil {
		return eff
	}
	if o.has&fLevel != 0 {
		eff.Level = o.set.Level
	}
	if o.has&fRate != 0 {
		eff.Rate = o.set.Rate
	}
	if o.has&fCount != 0 {
		eff.Count = o.set.Count
	}
	if o.has&fLogFrequency != 0 {
		eff.LogFrequency = o.set.LogFrequency
	}
	return eff
}

// get returns the setting in force for model ("" for the global one).
func (s *settings) get(model string) Setting {
	s.mu.Lock()
	defer s.mu.Unlock()
	if model == "" {
		return s.global.set
	}
	return s.effective(s.models[model])
}

// update applies u to model's setting ("" for the global one) and returns the setting now in force.
func (s *settings) update(model string, u Update) Setting {
	s.mu.Lock()
	defer s.mu.Unlock()
	if model == "" {
		apply(&s.global, u, s.initial)
		s.global.has = fLevel | fRate | fCount | fLogFrequency
		return s.global.set
	}
	o := s.models[model]
	if u.Set == 0 && u.Clear == 0 {
		delete(s.models, model)
		return s.effective(nil)
	}
	if o == nil {
		o = &own{}
		s.models[model] = o
	}
	apply(o, u, Setting{})
	o.has = (o.has | u.Set) &^ u.Clear
	if o.has == 0 {
		delete(s.models, model)
		o = nil
	}
	return s.effective(o)
}

func apply(o *own, u Update, cleared Setting) {
	pick := func(f field) bool { return u.Set&f != 0 }
	clear := func(f field) bool { return u.Clear&f != 0 }
	switch {
	case pick(fLevel):
		o.set.Level = u.Level
	case clear(fLevel):
		o.set.Level = cleared.Level
	}
	switch {
	case pick(fRate):
		o.set.Rate, o.seen = u.Rate, 0
	case clear(fRate):
		o.set.Rate, o.seen = cleared.Rate, 0
	}
	switch {
	case pick(fCount):
		o.set.Count = u.Count
	case clear(fCount):
		o.set.Count = cleared.Count
	}
	switch {
	case pick(fLogFrequency):
		o.set.LogFrequency = u.LogFrequency
	case clear(fLogFrequency):
		o.set.LogFrequency = cleared.LogFrequency
	}
}

// sample decides whether the next request to model is traced, and takes one from the remaining count if
// so. propagated requests (an OpenTelemetry context came with them) are traced whatever the rate and count,
// as Triton does, as long as the level is not OFF.
func (s *settings) sample(model string, propagated bool) (Setting, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.models[model]
	eff := s.effective(o)
	if eff.Level == Off {
		return eff, false
	}
	if propagated {
		return eff, true
	}
	if eff.Rate == 0 {
		return eff, false
	}
	rater := &s.global
	if o != nil && o.has&fRate != 0 {
		rater = o
	}
	counter := &s.global
	if o != nil && o.has&fCount != 0 {
		counter = o
	}
	if counter.set.Count == 0 {
		return eff, false
	}
	rater.seen++
	if rater.seen%uint64(eff.Rate) != 0 {
		return eff, false
	}
	if counter.set.Count > 0 {
		counter.set.Count--
	}
	return eff, true
}
