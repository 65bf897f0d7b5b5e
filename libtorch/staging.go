package libtorch

/*
#include <stdlib.h>
#include "ofatorch.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

// Staging is the input side of one model instance made fast: its buffers are allocated once, when the
// Staging is made, and reused by every batch (pinned host memory when the module is on CUDA, plain host
// memory on the CPU, where the host buffer is also the device buffer); Stage copies a batch into a free
// slot and, on CUDA, starts its host-to-device copies on a copy stream of its own and returns without
// waiting for them; Forward makes the module's stream wait for those copies, runs forward and copies
// the outputs out, as ForwardInto does. With two slots (the default), batch N+1 is staged and moving to
// the GPU while batch N computes:
//
//	st, err := s.Stage(ctx, next)   // while the previous Forward runs on another goroutine
//	...
//	outs, err = s.Forward(ctx, st, outs)
//
// An image input (StagingInput.Image) travels as uint8 [B,H,W,3] (preprocess.PrepareUint8's bytes, a
// quarter of float32's) and is normalized on the device into float32 [B,3,H,W], computing each value as
// preprocess.Prepare does on the host, bit for bit on the CPU; forward then converts it to the module's
// reduced precision like any floating input (Options.Precision).
//
// CaptureGraph records forward for one set of staged shapes (a bucket: see the bucket package) into a
// CUDA graph, which Forward then replays for batches of exactly those shapes; other shapes, modules on
// the CPU and failed captures run eagerly (CaptureGraph says why).
//
// A Staging is safe for concurrent use: Stage and Forward may run at once on different goroutines.
// Module.Close closes it too.
type Staging struct {
	m      *Module
	h      *C.ofa_staging // under m.mu: nil once closed
	inputs []StagingInput

	// The slots' states, so that Stage picks a free one and a Staged value is used once.
	slots chan int // free slot numbers
	state []slotState
	gens  []uint64
	mu    sync.Mutex // guards state and gens
}

type slotState uint8

const (
	slotFree slotState = iota
	slotStaged
	slotRunning
)

// StagingOptions describes a Staging.
type StagingOptions struct {
	// Slots is the number of batches that may be staged or running at once, 1 to 16; 0 means 2 (one
	// computing, the next one copying).
	Slots int
	// Inputs describes forward's inputs in order (at most 4, the ones forward requires at least).
	Inputs []StagingInput
}

// StagingInput is one forward input of a Staging.
type StagingInput struct {
	// DType is the host dtype of the staged tensors (Uint8 for an image input).
	DType DType
	// MaxShape is the capacity: a staged tensor has len(MaxShape) dimensions, none larger than here (at
	// most 8 dimensions). Buffers of this size are allocated once per slot.
	MaxShape []int64
	// Image, when set, makes this an image input: uint8 [B,H,W,3] (MaxShape [maxB,H,W,3]) normalized
	// on the device into float32 [B,3,H,W].
	Image *ImageNormalize
}

// ImageNormalize is torchvision's ToTensor + Normalize(mean, std), as preprocess.Normalize.
type ImageNormalize struct {
	Mean, Std [3]float32
}

// Staged is a batch staged into a slot of a Staging, to be passed once to Forward or Release.
type Staged struct {
	s    *Staging
	slot int
	gen  uint64
}

// StagingStats counts what a Staging did since it was made.
type StagingStats struct {
	BufferAllocations int64 // host and device buffers allocated: all when the Staging was made
	BufferBytes       int64 // their total size
	Pinned            bool  // the host buffers are pinned (CUDA)
	Graphs            int   // CUDA graphs captured
	Staged            int64 // batches staged
	BytesStaged       int64 // bytes staged: on CUDA, the host-to-device traffic
	EagerForwards     int64 // staged forwards run eagerly
	GraphReplays      int64 // staged forwards replayed from a CUDA graph
}

var (
	// ErrStagingFull is returned by Stage when every slot holds a batch.
	ErrStagingFull = errors.New("libtorch: every staging slot holds a batch: Forward or Release one first")
	// ErrNotStaged is returned for a Staged batch that was already forwarded or released.
	ErrNotStaged = errors.New("libtorch: the staged batch was already forwarded or released")
	// ErrGraphUnavailable is wrapped by CaptureGraph's errors when no graph was captured and those shapes
	// run eagerly: on the CPU, without CUDA headers at build time, or when the module cannot be captured.
	ErrGraphUnavailable = errors.New("libtorch: no CUDA graph")
)

// GraphUnavailableError is CaptureGraph's error when no graph was captured for Shapes and they run
// eagerly; Reason is the shim's explanation (the same for every shape on the CPU). It wraps
// ErrGraphUnavailable.
type GraphUnavailableError struct {
	Shapes [][]int64
	Device string
	Reason string
}

func (e *GraphUnavailableError) Error() string {
	return fmt.Sprintf("%v for %v on %s: %s", ErrGraphUnavailable, e.Shapes, e.Device, e.Reason)
}

func (e *GraphUnavailableError) Unwrap() error { return ErrGraphUnavailable }

// NewStaging allocates a Staging for m's forward.
func (m *Module) NewStaging(opts StagingOptions) (*Staging, error) {
	slots := opts.Slots
	if slots == 0 {
		slots = 2
	}
	if len(opts.Inputs) == 0 || len(opts.Inputs) > maxInto {
		return nil, fmt.Errorf("libtorch: staging for %s: %d inputs (want 1 to %d)", m.path, len(opts.Inputs), maxInto)
	}
	spec := make([]C.ofa_staging_input, len(opts.Inputs))
	for i, in := range opts.Inputs {
		if len(in.MaxShape) == 0 || len(in.MaxShape) > maxDims {
			return nil, fmt.Errorf("libtorch: staging for %s: input %d: max shape %v (want 1 to %d dimensions)", m.path, i, in.MaxShape, maxDims)
		}
		d := &spec[i]
		d.dtype = C.int32_t(in.DType)
		d.ndim = C.int32_t(len(in.MaxShape))
		for k, v := range in.MaxShape {
			d.max_shape[k] = C.int64_t(v)
		}
		if in.Image != nil {
			d.image = 1
			for c := 0; c < 3; c++ {
				d.mean[c] = C.float(in.Image.Mean[c])
				d.std[c] = C.float(in.Image.Std[c])
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil {
		return nil, ErrClosed
	}
	var h *C.ofa_staging
	if e := C.ofa_staging_new(m.h, C.int32_t(slots), C.int32_t(len(spec)), &spec[0], &h); e != nil {
		return nil, fmt.Errorf("libtorch: staging for %s: %s", m.path, takeError(e))
	}
	s := &Staging{
		m:      m,
		h:      h,
		inputs: append([]StagingInput(nil), opts.Inputs...),
		slots:  make(chan int, slots),
		state:  make([]slotState, slots),
		gens:   make([]uint64, slots),
	}
	for i := range slots {
		s.slots <- i
	}
	m.stagings = append(m.stagings, s)
	return s, nil
}

// Stage copies inputs (the Staging's inputs, in order, within their MaxShape) into a free slot and, on
// CUDA, starts their copies to the device; it returns without waiting for them. Every input is checked
// before anything is copied. It returns ErrStagingFull when every slot holds a batch.
func (s *Staging) Stage(ctx context.Context, inputs []Tensor) (Staged, error) {
	if err := ctx.Err(); err != nil {
		return Staged{}, err
	}
	if len(inputs) != len(s.inputs) {
		return Staged{}, fmt.Errorf("libtorch: stage %s: %d inputs, the staging takes %d", s.m.path, len(inputs), len(s.inputs))
	}
	var in [maxInto]C.ofa_tensor_desc
	var ip [maxInto]unsafe.Pointer
	if !describeInputs(inputs, &in, &ip) {
		return Staged{}, fmt.Errorf("libtorch: stage %s: a tensor has more than %d dimensions", s.m.path, maxDims)
	}
	s.m.mu.RLock()
	defer s.m.mu.RUnlock()
	if s.h == nil {
		return Staged{}, ErrClosed
	}
	var slot int
	select {
	case slot = <-s.slots:
	default:
		return Staged{}, ErrStagingFull
	}
	if e := C.ofa_stage(s.h, C.int32_t(slot), C.int32_t(len(inputs)), &in[0], ip[0], ip[1], ip[2], ip[3]); e != nil {
		s.slots <- slot
		return Staged{}, fmt.Errorf("libtorch: %s: %s", s.m.path, takeError(e))
	}
	s.mu.Lock()
	s.gens[slot]++
	s.state[slot] = slotStaged
	st := Staged{s: s, slot: slot, gen: s.gens[slot]}
	s.mu.Unlock()
	return st, nil
}

// claim moves st's slot from staged to running, or says why st cannot be used.
func (s *Staging) claim(st Staged) error {
	if st.s != s {
		return errors.New("libtorch: the staged batch belongs to another Staging")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.slot < 0 || st.slot >= len(s.state) || s.gens[st.slot] != st.gen || s.state[st.slot] != slotStaged {
		return ErrNotStaged
	}
	s.state[st.slot] = slotRunning
	return nil
}

// done frees a claimed slot.
func (s *Staging) done(slot int) {
	s.mu.Lock()
	s.state[slot] = slotFree
	s.mu.Unlock()
	s.slots <- slot
}

// Forward runs forward on a staged batch and frees its slot, whatever the outcome. Outputs are returned as
// ForwardInto returns them, reusing outs. A batch whose shapes have a captured graph is replayed from it.
// A cancelled ctx releases the batch without running it.
func (s *Staging) Forward(ctx context.Context, st Staged, outs []Tensor) ([]Tensor, error) {
	outs = outs[:0]
	if err := s.claim(st); err != nil {
		return outs, err
	}
	s.m.mu.RLock()
	defer s.m.mu.RUnlock()
	if s.h == nil {
		s.done(st.slot)
		return outs, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		s.releaseClaimed(st.slot)
		return outs, err
	}
	var ob outBuffers
	bufs := ob.lend(outs)
	r := C.ofa_staged_forward(s.h, C.int32_t(st.slot), C.int32_t(len(bufs)), &ob.d[0], ob.p[0], ob.p[1], ob.p[2], ob.p[3])
	s.done(st.slot)
	if r.error != nil {
		return outs, fmt.Errorf("libtorch: forward %s: %s", s.m.path, takeError(r.error))
	}
	return ob.take(outs, bufs, r), nil
}

// releaseClaimed frees a claimed slot whose batch will not run (the shim waits for its copies). The
// caller holds s.m.mu and s.h is open.
func (s *Staging) releaseClaimed(slot int) {
	// The shim's slot is still staged: only the Go side claimed it.
	if e := C.ofa_staged_release(s.h, C.int32_t(slot)); e != nil {
		C.ofa_free(unsafe.Pointer(e)) // cannot happen: the slot is staged in the shim as here
	}
	s.done(slot)
}

// Release frees a staged batch without running it, waiting for its copies to the device. It returns
// ErrNotStaged for a batch already forwarded or released.
func (st Staged) Release() error {
	s := st.s
	if s == nil {
		return ErrNotStaged
	}
	if err := s.claim(st); err != nil {
		return err
	}
	s.m.mu.RLock()
	defer s.m.mu.RUnlock()
	if s.h == nil {
		s.done(st.slot)
		return nil
	}
	s.releaseClaimed(st.slot)
	return nil
}

// CaptureGraph captures a CUDA graph of forward for staged inputs of exactly these shapes (one per input,
// the staging's order, within MaxShape: [B,H,W,3] for an image input), warming up on zero-filled inputs
// first. From then on Forward replays it for batches of those shapes. It returns nil when captured (or
// already captured) and otherwise an error saying why; an error wrapping ErrGraphUnavailable leaves those
// shapes on the eager path (on the CPU, without CUDA headers at build time, a module that cannot be
// captured), any other error names a bad argument. Graphs of one Staging share one memory pool: capture
// the largest shapes first. It excludes every other call on the module while it runs.
func (s *Staging) CaptureGraph(shapes ...[]int64) error {
	if len(shapes) != len(s.inputs) {
		return fmt.Errorf("libtorch: capture %s: %d shapes, the staging takes %d inputs", s.m.path, len(shapes), len(s.inputs))
	}
	var d [maxInto]C.ofa_tensor_desc
	for i, sh := range shapes {
		if len(sh) > maxDims {
			return fmt.Errorf("libtorch: capture %s: shape %v has more than %d dimensions", s.m.path, sh, maxDims)
		}
		d[i].dtype = C.int32_t(s.inputs[i].DType)
		d[i].ndim = C.int32_t(len(sh))
		for k, v := range sh {
			d[i].shape[k] = C.int64_t(v)
		}
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.h == nil {
		return ErrClosed
	}
	r := C.ofa_staging_capture(s.h, C.int32_t(len(shapes)), &d[0])
	switch r.status {
	case C.OFA_GRAPH_CAPTURED:
		return nil
	case C.OFA_GRAPH_UNAVAILABLE:
		return &GraphUnavailableError{Shapes: shapes, Device: s.m.device, Reason: takeError(r.reason)}
	}
	return fmt.Errorf("libtorch: capture %s: %s", s.m.path, takeError(r.reason))
}

// Stats returns the Staging's counters (zero once closed).
func (s *Staging) Stats() StagingStats {
	s.m.mu.RLock()
	defer s.m.mu.RUnlock()
	if s.h == nil {
		return StagingStats{}
	}
	var c C.ofa_staging_stats
	C.ofa_staging_get_stats(s.h, &c)
	return StagingStats{
		BufferAllocations: int64(c.buffer_allocations),
		BufferBytes:       int64(c.buffer_bytes),
		Pinned:            c.pinned != 0,
		Graphs:            int(c.graphs),
		Staged:            int64(c.staged),
		BytesStaged:       int64(c.bytes_staged),
		EagerForwards:     int64(c.eager_forwards),
		GraphReplays:      int64(c.graph_replays),
	}
}

// Close frees the Staging's buffers and graphs, waiting for running calls; a staged batch not yet
// forwarded is dropped. Later calls return ErrClosed. Closing twice is harmless.
func (s *Staging) Close() error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.free()
	for i, o := range s.m.stagings {
		if o == s {
			s.m.stagings = append(s.m.stagings[:i], s.m.stagings[i+1:]...)
			break
		}
	}
	return nil
}

// free releases the shim's staging; the caller holds s.m.mu exclusively.
func (s *Staging) free() {
	if s.h != nil {
		C.ofa_staging_free(s.h)
		s.h = nil
	}
}
