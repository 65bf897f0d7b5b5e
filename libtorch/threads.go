package libtorch

/*
#include <stdlib.h>
#include "ofatorch.h"
*/
import "C"

import "fmt"

// MaxThreads bounds the thread counts SetNumThreads and SetNumInteropThreads accept: a typo must not make
// libtorch start thousands of threads.
const MaxThreads = 1024

// SetNumThreads sets the number of intra-op threads (at::set_num_threads) for the whole process; n is 1
// to MaxThreads. It takes effect for every later forward on any OS thread.
func SetNumThreads(n int) error {
	if n < 1 || n > MaxThreads {
		return fmt.Errorf("libtorch: intra-op threads must be 1 to %d, got %d", MaxThreads, n)
	}
	if e := C.ofa_set_num_threads(C.int32_t(n)); e != nil {
		return fmt.Errorf("libtorch: %s", takeError(e))
	}
	return nil
}

// NumThreads returns the number of intra-op threads forwards use now.
func NumThreads() int { return int(C.ofa_get_num_threads()) }

// ConfiguredNumThreads returns the count last set with SetNumThreads, or 0 if it was never called in this
// process (libtorch's default applies).
func ConfiguredNumThreads() int { return int(C.ofa_requested_num_threads()) }

// SetNumInteropThreads sets the size of libtorch's inter-op thread pool (at::set_num_interop_threads); n
// is 1 to MaxThreads. libtorch accepts this once per process, before any inter-op work has started; a
// later call returns an error and leaves the pool as it is.
func SetNumInteropThreads(n int) error {
	if n < 1 || n > MaxThreads {
		return fmt.Errorf("libtorch: inter-op threads must be 1 to %d, got %d", MaxThreads, n)
	}
	if e := C.ofa_set_num_interop_threads(C.int32_t(n)); e != nil {
		return fmt.Errorf("libtorch: %s", takeError(e))
	}
	return nil
}

// NumInteropThreads returns the size of the inter-op pool (or the size it will have once it starts).
func NumInteropThreads() int { return int(C.ofa_get_num_interop_threads()) }
