// Package libtorch runs TorchScript modules through libtorch's C++ API, via the thin C shim in csrc/
// (built into build/libofatorch.so by the repository's CMakeLists.txt: `make shim`).
//
// Load reads a TorchScript file onto a device ("cpu" or "cuda:N") in eval mode; Module.Forward runs its
// forward method on host tensors and returns host tensors. Inputs are copied into libtorch (through pinned
// memory and the module's own CUDA stream on a GPU) and outputs are copied back into memory owned by Go, so
// no Go value ever points into libtorch and nothing needs a finalizer: a Module lives until Close.
//
// A Staging (Module.NewStaging) is the fast input path of one model instance: buffers allocated once
// (pinned on CUDA), the next batch copied to the device while the current one computes, images sent as
// uint8 and normalized on the device, and CUDA graphs replayed for captured shapes.
//
// A Module is safe for concurrent use: many goroutines may call Forward on one Module, and different
// Modules may be used at the same time. Each call sets libtorch's inference mode, device and stream on the
// OS thread it runs on. Forward checks its context before it starts; a forward pass that has started runs
// to completion (libtorch cannot interrupt it).
//
// CPU threads are process-wide in libtorch, and so here (as in Triton's pytorch backend): SetNumThreads
// sets how many threads one op may use (GEMMs, convolutions, element-wise loops; libtorch's default is
// OMP_NUM_THREADS, else the number of physical cores) for every Module and goroutine, and
// SetNumInteropThreads sizes the pool that runs TorchScript fork tasks, once, before it is first used.
// Forwards that run at once (one per model instance) each use the intra-op count, so on a small or shared
// CPU a lower count avoids oversubscription.
//
// Linking: the cgo flags point at ../build and record it as an rpath, so tests and `go build` work from a
// checkout after `make shim`. Deployed binaries also search $ORIGIN and $ORIGIN/../lib when built with
// CGO_LDFLAGS='-Wl,-rpath,$ORIGIN -Wl,-rpath,$ORIGIN/../lib' (the Makefile exports it; cgo directives
// cannot carry a '$'), so libofatorch.so may sit beside the binary or in ../lib; LD_LIBRARY_PATH, searched
// first, overrides all of these (scripts/gpu/gpu_check.sh relies on that).
package libtorch

/*
#cgo CFLAGS: -I${SRCDIR}/csrc
#cgo LDFLAGS: -L${SRCDIR}/../build -lofatorch -Wl,-rpath,${SRCDIR}/../build
#cgo noescape ofa_forward
#cgo nocallback ofa_forward
#cgo noescape ofa_forward_into
#cgo nocallback ofa_forward_into
#cgo nocallback ofa_result_free
#cgo noescape ofa_stage
#cgo nocallback ofa_stage
#cgo noescape ofa_staged_forward
#cgo nocallback ofa_staged_forward
#include <stdlib.h>
#include "ofatorch.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// ErrClosed is returned by Forward on a Module that has been closed.
var ErrClosed = errors.New("libtorch: module is closed")

// Options says where and how to load a module.
type Options struct {
	// Device is "cpu" (the default when empty) or "cuda:N" ("cuda" means "cuda:0").
	Device string
	// Precision is Float32 (the default: parameters stay as saved), Float16 or BFloat16. A reduced
	// precision converts the module's floating-point parameters and buffers, as nn.Module.to(dtype) does
	// in Python: integer and bool ones (index buffers, counters, masks) stay as saved. Forward then
	// converts floating inputs to it on the device and returns outputs of that type as float32, so
	// callers keep speaking float32. Integer and bool inputs (token ids, masks) are never converted.
	Precision DType
}

// Module is a loaded TorchScript module. Create it with Load and release it with Close.
type Module struct {
	path   string
	device string
	schema string
	min    int
	max    int

	mu       sync.RWMutex // held shared by Forward and staged calls, exclusively by Close and CaptureGraph
	h        *C.ofa_module
	stagings []*Staging // open stagings made from this module (under mu); Close frees them first

	scratch sync.Pool // *[]Tensor: Forward's output buffers, reused across calls
}

// Load reads the TorchScript file at path onto opts.Device in eval mode.
func Load(path string, opts Options) (*Module, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("libtorch: load: %w", err)
	}
	device, err := normalizeDevice(opts.Device)
	if err != nil {
		return nil, err
	}
	switch opts.Precision {
	case Float32, Float16, BFloat16:
	default:
		return nil, fmt.Errorf("libtorch: load %s: precision must be float32, float16 or bfloat16, not %v", path, opts.Precision)
	}
	cpath, cdev := C.CString(path), C.CString(device)
	defer C.free(unsafe.Pointer(cpath))
	defer C.free(unsafe.Pointer(cdev))
	var h *C.ofa_module
	if e := C.ofa_load(cpath, cdev, C.int32_t(opts.Precision), &h); e != nil {
		return nil, fmt.Errorf("libtorch: %s", takeError(e))
	}
	var lo, hi C.int32_t
	C.ofa_module_arity(h, &lo, &hi)
	return &Module{
		path:   path,
		device: device,
		schema: C.GoString(C.ofa_module_schema(h)),
		min:    int(lo),
		max:    int(hi),
		h:      h,
	}, nil
}

// normalizeDevice maps "" to "cpu" and "cuda" to "cuda:0"; libtorch validates the rest.
func normalizeDevice(d string) (string, error) {
	switch {
	case d == "" || d == "cpu":
		return "cpu", nil
	case d == "cuda":
		return "cuda:0", nil
	case strings.HasPrefix(d, "cuda:"):
		return d, nil
	}
	return "", fmt.Errorf("libtorch: unknown device %q (want cpu or cuda:N)", d)
}

// Device returns the device the module runs on, e.g. "cpu" or "cuda:0".
func (m *Module) Device() string { return m.device }

// Path returns the file the module was loaded from.
func (m *Module) Path() string { return m.path }

// Schema returns the forward method's TorchScript schema, e.g.
// "forward(__torch__.M self, Tensor x, Tensor ids) -> Tensor".
func (m *Module) Schema() string { return m.schema }

// NumInputs returns how many tensors forward requires at least and accepts at most.
func (m *Module) NumInputs() (min, max int) { return m.min, m.max }

// Forward runs the module's forward method on inputs and returns its outputs: one tensor, or the tensors
// of a (nested) tuple or list, in order. Numbers returned by forward come back as scalar tensors. The
// outputs are new memory owned by the caller; ForwardInto reuses memory instead.
//
// ctx is checked once, before the call starts; a running forward pass cannot be interrupted. Errors name
// the problem: a wrong number of inputs, a buffer that does not match its shape and dtype, or the message
// of the exception the module raised (wrong dtypes and ranks usually surface this way). After an error
// the module remains usable.
func (m *Module) Forward(ctx context.Context, inputs []Tensor) ([]Tensor, error) {
	// The shim copies into a pooled scratch set (one cgo call), then the outputs are copied out of it into
	// memory of their own, so a later call cannot overwrite what the caller holds.
	sc, _ := m.scratch.Get().(*[]Tensor)
	if sc == nil {
		sc = new([]Tensor)
	}
	outs, err := m.ForwardInto(ctx, inputs, *sc)
	var res []Tensor
	if err == nil {
		res = cloneTensors(outs)
	}
	*sc = outs
	m.scratch.Put(sc)
	return res, err
}

// ForwardInto is Forward writing its outputs into memory the caller lends: it reuses the backing array of
// outs and the Data and Shape capacity of its elements (up to cap(outs)), allocating only where an output
// does not fit, and returns the outputs as a slice of that array. Pass the previous result back in:
//
//	outs, err = m.ForwardInto(ctx, inputs, outs)
//
// The returned tensors stay valid until outs is passed to ForwardInto again; the caller must not use the
// Data or Shape memory of outs for anything else meanwhile. With the usual few inputs and outputs (at
// most four of each, rank at most eight) a call whose outputs fit makes a single cgo call and no
// allocation. On error it returns outs[:0], keeping the memory for the next call. Errors are Forward's.
func (m *Module) ForwardInto(ctx context.Context, inputs []Tensor, outs []Tensor) ([]Tensor, error) {
	outs = outs[:0]
	if err := ctx.Err(); err != nil {
		return outs, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.h == nil {
		return outs, ErrClosed
	}
	if len(inputs) > maxInto {
		return m.forwardPinned(inputs, outs)
	}
	// Every argument of ofa_forward_into points to memory without Go pointers (the descriptors are plain
	// numbers; the data are byte buffers), so cgo's pointer rules hold without pinning; the shim keeps
	// none of them after the call (cgo noescape: the descriptor arrays stay on this stack).
	var in [maxInto]C.ofa_tensor_desc
	var ip [maxInto]unsafe.Pointer
	if !describeInputs(inputs, &in, &ip) {
		return m.forwardPinned(inputs, outs)
	}
	var ob outBuffers
	bufs := ob.lend(outs)
	r := C.ofa_forward_into(m.h, C.int32_t(len(inputs)), &in[0], ip[0], ip[1], ip[2], ip[3],
		C.int32_t(len(bufs)), &ob.d[0], ob.p[0], ob.p[1], ob.p[2], ob.p[3])
	if r.error != nil {
		return outs, fmt.Errorf("libtorch: forward %s: %s", m.path, takeError(r.error))
	}
	return ob.take(outs, bufs, r), nil
}

// describeInputs fills the pointer-free descriptors and data pointers of ofa_forward_into and ofa_stage
// for at most maxInto inputs; false when a rank exceeds maxDims.
func describeInputs(inputs []Tensor, in *[maxInto]C.ofa_tensor_desc, ip *[maxInto]unsafe.Pointer) bool {
	for i := range inputs {
		t := &inputs[i]
		if len(t.Shape) > maxDims {
			return false
		}
		d := &in[i]
		d.dtype = C.int32_t(t.DType)
		d.ndim = C.int32_t(len(t.Shape))
		d.nbytes = C.int64_t(len(t.Data))
		for k, v := range t.Shape {
			d.shape[k] = C.int64_t(v)
		}
		if len(t.Data) > 0 {
			ip[i] = unsafe.Pointer(unsafe.SliceData(t.Data))
		}
	}
	return true
}

// outBuffers lends the Data capacity of up to maxInto output tensors to the shim.
type outBuffers struct {
	d [maxInto]C.ofa_tensor_desc
	p [maxInto]unsafe.Pointer
}

// lend describes the buffers of outs[:cap] (at most maxInto) and returns them.
func (ob *outBuffers) lend(outs []Tensor) []Tensor {
	bufs := outs[:min(cap(outs), maxInto)]
	for i := range bufs {
		if c := cap(bufs[i].Data); c > 0 {
			ob.d[i].nbytes = C.int64_t(c)
			ob.p[i] = unsafe.Pointer(unsafe.SliceData(bufs[i].Data))
		}
	}
	return bufs
}

// take turns a successful ofa_forward_into_ret into the outputs: written into the lent buffers, or, when
// they did not fit, copied from the shim's result into buffers grown for next time.
func (ob *outBuffers) take(outs, bufs []Tensor, r C.ofa_forward_into_ret) []Tensor {
	if r.result != nil {
		outs = copyResult(outs, unsafe.Slice(r.result.outputs, int(r.result.n)))
		C.ofa_result_free(r.result)
		return outs
	}
	outs = bufs[:int(r.n)]
	for i := range outs {
		t, d := &outs[i], &ob.d[i]
		t.DType = DType(d.dtype)
		t.Data = t.Data[:int(d.nbytes)]
		t.Shape = t.Shape[:0]
		for _, v := range d.shape[:int(d.ndim)] {
			t.Shape = append(t.Shape, int64(v))
		}
	}
	return outs
}

// maxInto and maxDims are what ofa_forward_into takes: tensors per call and dimensions per tensor.
const (
	maxInto = C.OFA_INTO_MAX_TENSORS
	maxDims = C.OFA_INTO_MAX_DIMS
)

// forwardPinned runs forward through ofa_forward, whose input descriptors point to the data and shapes:
// for more inputs or higher ranks than ofa_forward_into takes. The pointed-to memory is pinned for the
// call, as cgo requires of Go pointers stored in memory passed to C.
func (m *Module) forwardPinned(inputs []Tensor, outs []Tensor) ([]Tensor, error) {
	var pin runtime.Pinner
	defer pin.Unpin()
	cin := make([]C.ofa_tensor_in, len(inputs))
	for i := range inputs {
		t := &inputs[i]
		c := &cin[i]
		c.dtype = C.int32_t(t.DType)
		c.ndim = C.int32_t(len(t.Shape))
		if len(t.Shape) > 0 {
			pin.Pin(&t.Shape[0])
			c.shape = (*C.int64_t)(unsafe.Pointer(&t.Shape[0]))
		}
		if len(t.Data) > 0 {
			pin.Pin(&t.Data[0])
			c.data = unsafe.Pointer(&t.Data[0])
		}
		c.nbytes = C.int64_t(len(t.Data))
	}
	r := C.ofa_forward(m.h, unsafe.SliceData(cin), C.int32_t(len(cin)))
	if r.error != nil {
		return outs, fmt.Errorf("libtorch: forward %s: %s", m.path, takeError(r.error))
	}
	outs = copyResult(outs, unsafe.Slice(r.result.outputs, int(r.result.n)))
	C.ofa_result_free(r.result)
	return outs, nil
}

// copyResult copies the shim's outputs into outs[:len(src)], reusing the Data and Shape capacity of the
// elements of outs; the outputs that do not fit share one new block for their data and one for their
// shapes.
func copyResult(outs []Tensor, src []C.ofa_tensor_out) []Tensor {
	outs = outs[:0]
	if cap(outs) < len(src) {
		outs = append(outs[:cap(outs)], make([]Tensor, len(src)-cap(outs))...)
	}
	outs = outs[:len(src)]
	var nbytes, ndims int
	for i := range src {
		if n := int(src[i].nbytes); cap(outs[i].Data) < n {
			nbytes += n
		}
		if nd := int(src[i].ndim); cap(outs[i].Shape) < nd {
			ndims += nd
		}
	}
	var data []byte
	var shapes []int64
	if nbytes > 0 {
		data = make([]byte, nbytes)
	}
	if ndims > 0 {
		shapes = make([]int64, ndims)
	}
	for i := range src {
		o, t := &src[i], &outs[i]
		n, nd := int(o.nbytes), int(o.ndim)
		if cap(t.Data) < n {
			t.Data, data = data[:n:n], data[n:]
		}
		if cap(t.Shape) < nd {
			t.Shape, shapes = shapes[:nd:nd], shapes[nd:]
		}
		t.DType = DType(o.dtype)
		t.Data = t.Data[:n]
		t.Shape = t.Shape[:nd]
		if nd > 0 {
			copy(t.Shape, unsafe.Slice((*int64)(unsafe.Pointer(o.shape)), nd))
		}
		if n > 0 {
			copy(t.Data, unsafe.Slice((*byte)(o.data), n))
		}
	}
	return outs
}

// cloneTensors copies ts into new memory: one allocation for the tensors, one for all shapes, one for all
// data.
func cloneTensors(ts []Tensor) []Tensor {
	if len(ts) == 0 {
		return []Tensor{}
	}
	var nbytes, ndims int
	for i := range ts {
		nbytes += len(ts[i].Data)
		ndims += len(ts[i].Shape)
	}
	data := make([]byte, nbytes)
	shapes := make([]int64, ndims)
	res := make([]Tensor, len(ts))
	for i := range ts {
		n, nd := len(ts[i].Data), len(ts[i].Shape)
		res[i] = Tensor{DType: ts[i].DType, Shape: shapes[:nd:nd], Data: data[:n:n]}
		copy(res[i].Shape, ts[i].Shape)
		copy(res[i].Data, ts[i].Data)
		shapes, data = shapes[nd:], data[n:]
	}
	return res
}

// Close releases the module and the Stagings made from it. It waits for running Forward and staged
// calls; later calls return ErrClosed. Closing twice is harmless.
func (m *Module) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.stagings {
		s.free()
	}
	m.stagings = nil
	if m.h != nil {
		C.ofa_unload(m.h)
		m.h = nil
	}
	return nil
}

// takeError converts and frees an error string returned by the shim.
func takeError(e *C.char) string {
	defer C.ofa_free(unsafe.Pointer(e))
	return C.GoString(e)
}
