// threads.cpp: libtorch's CPU thread settings, which are process-wide: the intra-op thread count (threads
// inside one op: GEMMs, convolutions, element-wise loops) and the inter-op pool (TorchScript fork).
#include <ATen/Parallel.h>

#include <atomic>

#include "internal.h"

namespace {

// The intra-op count set through ofa_set_num_threads; 0 while libtorch's default applies.
std::atomic<int32_t> g_intra{0};
// What the calling OS thread last applied.
thread_local int32_t t_intra = 0;

}  // namespace

namespace ofa {

// With libtorch's OpenMP backend, at::set_num_threads changes the calling thread's OpenMP setting and the
// default of threads that start parallel work later; a thread that already ran parallel work keeps its
// old count. Callers such as Go move between OS threads, so every forward re-applies the process-wide
// count on its thread when that thread is behind (an atomic load and a compare otherwise).
void apply_thread_settings() {
  int32_t want = g_intra.load(std::memory_order_relaxed);
  if (want > 0 && want != t_intra) {
    at::set_num_threads(want);
    t_intra = want;
  }
}

}  // namespace ofa

extern "C" {

char* ofa_set_num_threads(int32_t n) {
  if (n < 1) return ofa::make_error("intra-op threads: want at least 1, got " + std::to_string(n));
  try {
    at::set_num_threads(n);
    t_intra = n;
    g_intra.store(n, std::memory_order_relaxed);
    return nullptr;
  } catch (const std::exception& e) {
    return ofa::make_error("intra-op threads: " + ofa::describe(e));
  }
}

int32_t ofa_get_num_threads(void) {
  try {
    ofa::apply_thread_settings();
    return static_cast<int32_t>(at::get_num_threads());
  } catch (...) {
    return 0;
  }
}

int32_t ofa_requested_num_threads(void) { return g_intra.load(std::memory_order_relaxed); }

char* ofa_set_num_interop_threads(int32_t n) {
  if (n < 1) return ofa::make_error("inter-op threads: want at least 1, got " + std::to_string(n));
  try {
    at::set_num_interop_threads(n);
    return nullptr;
  } catch (const std::exception& e) {
    // libtorch allows one setting, before the pool has started.
    return ofa::make_error("inter-op threads: " + ofa::describe(e));
  }
}

int32_t ofa_get_num_interop_threads(void) {
  try {
    return static_cast<int32_t>(at::get_num_interop_threads());
  } catch (...) {
    return 0;
  }
}

}  // extern "C"
