package libtorch

/*
#include <stdlib.h>
#include "ofatorch.h"
*/
import "C"

import "fmt"

// CUDAAvailable reports whether the linked libtorch was built with CUDA and sees at least one GPU.
func CUDAAvailable() bool { return C.ofa_cuda_available() != 0 }

// DeviceCount returns the number of CUDA devices libtorch sees (0 without CUDA).
func DeviceCount() int { return int(C.ofa_device_count()) }

// MemoryInfo returns the free and total memory of CUDA device (as cudaMemGetInfo reports them).
func MemoryInfo(device int) (free, total uint64, err error) {
	var f, t C.uint64_t
	if e := C.ofa_memory_info(C.int32_t(device), &f, &t); e != nil {
		return 0, 0, fmt.Errorf("libtorch: %s", takeError(e))
	}
	return uint64(f), uint64(t), nil
}
