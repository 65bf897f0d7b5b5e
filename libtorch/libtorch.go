// Package libtorch runs TorchScript modules through libtorch's C++ API, via the thin C shim in csrc/
// (built into build/libofatorch.so by the repository's CMakeLists.txt: `make shim`).
//
// Load reads a TorchScript file onto a device ("cpu" or "cuda:N") in eval mode; Module.Forward runs its
// forward method on host tensors and returns host tensors. Inputs are copied into libtorch (through pinned
// memory and the module's own CUDA stream on a GPU) and outputs are copied back into memory owned by Go, so
// no Go value ever points into libtorch and nothing needs a finalizer: a Module lives until Close.
//
// A Module is safe for concurrent use: many goroutines may call Forward on one Module, and different
// Modules may be used at the same time. Each call sets libtorch's inference mode, device and stream on the
// OS thread it runs on. Forward checks its context before it starts; a forward pass that has started runs
// to completion (libtorch cannot interrupt it).
//
// Linking: the cgo flags point at ../build and record it as an rpath, so tests and `go build` work from a
// checkout after `make shim`. Deployed binaries also search $ORIGIN and $ORIGIN/../lib when built with
// CGO_LDFLAGS='-Wl,-rpath,$ORIGIN -Wl,-rpath,$ORIGIN/../lib' (the Makefile exports it; cgo directives
// cannot carry a '$'), so libofatorch.so may sit beside the binary or in ../lib; LD_LIBRARY_PATH, searched
// first, overrides all of these (scripts/gpu_check.sh relies on that).
package libtorch

/*
#cgo CFLAGS: -I${SRCDIR}/csrc
#cgo LDFLAGS: -L${SRCDIR}/../build -lofatorch -Wl,-rpath,${SRCDIR}/../build
#cgo noescape ofa_forward
#cgo nocallback ofa_forward
#cgo nocallback ofa_result_free
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
	// precision converts the module's floating parameters and buffers; Forward then converts float32
	// inputs to it on the device and returns outputs of that type as float32, so callers keep speaking
	// float32. Inputs of other dtypes pass unchanged.
	Precision DType
}

// Module is a loaded TorchScript module. Create it with Load and release it with Close.
type Module struct {
	path   string
	device string
	schema string
	min    int
	max    int

	mu sync.RWMutex // held shared by Forward, exclusively by Close
	h  *C.ofa_module
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
// of a (nested) tuple or list, in order. Numbers returned by forward come back as scalar tensors.
//
// ctx is checked once, before the call starts; a running forward pass cannot be interrupted. Errors name
// the problem: a wrong number of inputs, a buffer that does not match its shape and dtype, or the message
// of the exception the module raised (wrong dtypes and ranks usually surface this way). After an error
// the module remains usable.
func (m *Module) Forward(ctx context.Context, inputs []Tensor) ([]Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.h == nil {
		return nil, ErrClosed
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	// The descriptors stay on the stack for the usual few inputs (ofa_forward keeps no pointer to them).
	var small [4]C.ofa_tensor_in
	cin := small[:0]
	if len(inputs) > len(small) {
		cin = make([]C.ofa_tensor_in, 0, len(inputs))
	}
	cin = cin[:len(inputs)]
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
	var in *C.ofa_tensor_in
	if len(cin) > 0 {
		in = &cin[0]
	}
	r := C.ofa_forward(m.h, in, C.int32_t(len(cin)))
	if r.error != nil {
		return nil, fmt.Errorf("libtorch: forward %s: %s", m.path, takeError(r.error))
	}
	outs := copyOutputs(unsafe.Slice(r.result.outputs, int(r.result.n)))
	C.ofa_result_free(r.result)
	return outs, nil
}

// copyOutputs copies the shim's outputs into Go memory: one allocation for all data, one for all shapes.
func copyOutputs(outs []C.ofa_tensor_out) []Tensor {
	var nbytes, ndims int
	for i := range outs {
		nbytes += int(outs[i].nbytes)
		ndims += int(outs[i].ndim)
	}
	data := make([]byte, nbytes)
	shapes := make([]int64, ndims)
	res := make([]Tensor, len(outs))
	for i := range outs {
		o := &outs[i]
		n, nd := int(o.nbytes), int(o.ndim)
		if nd > 0 {
			copy(shapes[:nd], unsafe.Slice((*int64)(unsafe.Pointer(o.shape)), nd))
		}
		if n > 0 {
			copy(data[:n], unsafe.Slice((*byte)(o.data), n))
		}
		res[i] = Tensor{DType: DType(o.dtype), Shape: shapes[:nd:nd], Data: data[:n:n]}
		shapes, data = shapes[nd:], data[n:]
	}
	return res
}

// Close releases the module. It waits for running Forward calls; later calls return ErrClosed.
// Closing twice is harmless.
func (m *Module) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
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
