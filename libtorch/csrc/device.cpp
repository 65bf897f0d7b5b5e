// device.cpp: device facts (CUDA availability, device count, memory) without any CUDA header, so the same
// source builds against CPU-only and CUDA libtorch.
#include <dlfcn.h>
#include <link.h>
#include <torch/cuda.h>

#include <cstdlib>
#include <cstring>

#include "internal.h"

namespace {

using MemGetInfoFn = int (*)(size_t*, size_t*);

// Finds cudaMemGetInfo in the CUDA runtime that libtorch_cuda loaded (its file name varies by wheel).
int find_cudart(struct dl_phdr_info* info, size_t, void* data) {
  if (info->dlpi_name == nullptr || std::strstr(info->dlpi_name, "libcudart") == nullptr) return 0;
  void* h = dlopen(info->dlpi_name, RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) return 0;
  void* sym = dlsym(h, "cudaMemGetInfo");
  dlclose(h);
  if (sym == nullptr) return 0;
  *static_cast<MemGetInfoFn*>(data) = reinterpret_cast<MemGetInfoFn>(sym);
  return 1;
}

MemGetInfoFn mem_get_info() {
  if (void* sym = dlsym(RTLD_DEFAULT, "cudaMemGetInfo")) return reinterpret_cast<MemGetInfoFn>(sym);
  MemGetInfoFn fn = nullptr;
  dl_iterate_phdr(find_cudart, &fn);
  return fn;
}

}  // namespace

extern "C" {

int32_t ofa_cuda_available(void) {
  try {
    return torch::cuda::is_available() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

int32_t ofa_device_count(void) {
  try {
    return static_cast<int32_t>(torch::cuda::device_count());
  } catch (...) {
    return 0;
  }
}

char* ofa_memory_info(int32_t device, uint64_t* free_bytes, uint64_t* total_bytes) {
  try {
    *free_bytes = 0;
    *total_bytes = 0;
    if (!torch::cuda::is_available()) return ofa::make_error("memory info: CUDA is not available");
    int32_t n = static_cast<int32_t>(torch::cuda::device_count());
    if (device < 0 || device >= n) {
      return ofa::make_error("memory info: no CUDA device " + std::to_string(device) + " (" + std::to_string(n) +
                             " present)");
    }
    MemGetInfoFn fn = mem_get_info();
    if (fn == nullptr) return ofa::make_error("memory info: cudaMemGetInfo not found in the loaded CUDA runtime");
    c10::DeviceGuard guard(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(device)));
    size_t f = 0, t = 0;
    int rc = fn(&f, &t);
    if (rc != 0) return ofa::make_error("memory info: cudaMemGetInfo failed with code " + std::to_string(rc));
    *free_bytes = f;
    *total_bytes = t;
    return nullptr;
  } catch (const std::exception& e) {
    return ofa::make_error("memory info: " + ofa::describe(e));
  }
}

void ofa_free(void* p) { std::free(p); }

}  // extern "C"
