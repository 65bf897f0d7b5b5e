package tracing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"
)

// Triton's JSON trace file (docs: Triton's trace.md, "JSON Trace Output") is one JSON array of objects. Each
// trace contributes, under its id, a head {"id","model_name","model_version","request_id"[,"parent_id"]},
// one {"id","timestamps":[{"name","ns"}]} per timestamp, and at the TENSORS level one
// {"id","activity","tensor":{"name","data","shape","dtype"}} per tensor.

type fileHead struct {
	ID           uint64 `json:"id"`
	ModelName    string `json:"model_name"`
	ModelVersion int64  `json:"model_version"`
	RequestID    string `json:"request_id"`
	ParentID     uint64 `json:"parent_id,omitempty"`
}

type fileStamp struct {
	ID         uint64   `json:"id"`
	Timestamps []nsTime `json:"timestamps"`
}

type nsTime struct {
	Name string `json:"name"`
	NS   int64  `json:"ns"`
}

type fileTensor struct {
	ID       uint64 `json:"id"`
	Activity string `json:"activity"`
	Tensor   struct {
		Name  string `json:"name"`
		Data  string `json:"data"`
		Shape string `json:"shape"`
		Dtype string `json:"dtype"`
	} `json:"tensor"`
}

// ns is t in nanoseconds on the tracer's clock: the wall clock at the tracer's start plus the monotonic
// time since, so that the timestamps of a trace are ordered as they happened whatever the wall clock does.
func (t *Tracer) ns(at time.Time) int64 { return t.base.UnixNano() + int64(at.Sub(t.base)) }

// fileEntries encodes tr and its children as comma-separated objects of the trace file.
func (tr *Trace) fileEntries(children []*Trace) []byte {
	var buf bytes.Buffer
	add := func(v any) {
		b, err := json.Marshal(v)
		if err != nil { // only plain strings and numbers: cannot happen
			return
		}
		if buf.Len() > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
	}
	for _, t := range append([]*Trace{tr}, children...) {
		t.mu.Lock()
		head := fileHead{ID: t.id, ModelName: t.model, ModelVersion: t.version, RequestID: t.requestID, ParentID: t.parent}
		tensors := t.tensors
		t.mu.Unlock()
		add(head)
		for _, s := range t.Stamps() {
			add(fileStamp{ID: t.id, Timestamps: []nsTime{{s.Name, tr.tracer.ns(s.At)}}})
		}
		for _, x := range tensors {
			var ft fileTensor
			ft.ID, ft.Activity = t.id, x.activity
			ft.Tensor.Name, ft.Tensor.Data, ft.Tensor.Shape, ft.Tensor.Dtype = x.name, x.data, x.shape, x.dtype
			add(ft)
		}
	}
	return buf.Bytes()
}

// fileSink collects finished traces and writes them as Triton does: with a log frequency N > 0, every N
// traces to path.0, path.1, ..., and the rest at close to the next indexed file; with N = 0, all of them to
// path at close.
type fileSink struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	pending [][]byte
	traces  int // traces in pending
	index   int // next indexed file
	indexed bool
}

func (f *fileSink) add(entries []byte, traces int, logFrequency uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = append(f.pending, entries)
	f.traces += traces
	if logFrequency > 0 {
		f.indexed = true
	}
	if logFrequency > 0 && f.traces >= int(logFrequency) {
		if err := f.writeLocked(f.path + "." + strconv.Itoa(f.index)); err != nil {
			f.log.Error("writing trace file", "err", err)
		}
		f.index++
	}
}

func (f *fileSink) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pending) == 0 {
		return nil
	}
	path := f.path
	if f.indexed {
		path += "." + strconv.Itoa(f.index)
		f.index++
	}
	return f.writeLocked(path)
}

// writeLocked writes the pending traces as one JSON array to path (a temporary file renamed into place,
// so a reader never sees half a file) and forgets them.
func (f *fileSink) writeLocked(path string) error {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, e := range f.pending {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(e)
	}
	buf.WriteString("]\n")
	f.pending, f.traces = f.pending[:0], 0
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("trace file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("trace file: %w", err)
	}
	return nil
}
