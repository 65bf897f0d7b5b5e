// bench_direct.cpp: the baseline for the shim's per-call overhead. Calls a TorchScript module in a loop
// on a host input buffer, reading the output back into a reused host buffer, in one of three ways:
//
//   direct  (default) through torch::jit, as a C++ server would, doing the work the shim's contract
//           requires of every call: the input is copied into a tensor of its own (the shim must copy:
//           ofatorch.h promises it keeps no reference to caller memory, and a module may write to or keep
//           its inputs), forward, the output copied into the host buffer.
//   borrow  the same, but the input tensor wraps the host buffer (torch::from_blob, no copy): less work
//           than the shim may do, printed for reference.
//   shim    through the shim's C ABI (ofa_forward_into) from C++: the shim's own cost, without Go.
//
// Usage: ofatorch_bench_direct <model.pt> <batch> <features> <seconds> [direct|borrow|shim]
// Prints: direct_ns_per_call <wall ns>, direct_cpu_ns_per_call <process CPU ns> (user+system time of the
// whole process, the steadier figure on a busy machine) and direct_calls <n>.
#include <ATen/EmptyTensor.h>
#include <sys/resource.h>
#include <torch/script.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "ofatorch.h"

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::fprintf(stderr, "usage: %s <model.pt> <batch> <features> <seconds> [direct|borrow|shim]\n", argv[0]);
    return 2;
  }
  const int64_t batch = std::atoll(argv[2]), features = std::atoll(argv[3]);
  const double seconds = std::atof(argv[4]);
  const std::string mode = argc == 6 ? argv[5] : "direct";
  std::vector<float> in(static_cast<size_t>(batch * features));
  for (size_t i = 0; i < in.size(); i++) in[i] = static_cast<float>(i % 7) * 0.25f - 0.5f;
  const size_t in_bytes = in.size() * sizeof(float);
  std::vector<char> out;

  torch::jit::Module m;
  ofa_module* shim = nullptr;
  ofa_tensor_desc shim_in{}, shim_out{};
  std::function<void()> call;
  if (mode == "direct" || mode == "borrow") {
    {
      // Loaded as the shim loads it (ofa_load): under InferenceMode, so that parameters are inference
      // tensors and the ops on them skip the view and version-counter bookkeeping normal tensors get.
      c10::InferenceMode im;
      m = torch::jit::load(argv[1], c10::Device(c10::kCPU));
      m.eval();
    }
    const bool borrow = mode == "borrow";
    call = [&, borrow]() {
      c10::InferenceMode im;
      at::Tensor x;
      if (borrow) {
        x = torch::from_blob(in.data(), {batch, features}, at::kFloat);
      } else {
        x = at::Tensor(at::detail::empty_cpu({batch, features}, at::kFloat));
        std::memcpy(x.data_ptr(), in.data(), in_bytes);
      }
      at::Tensor y = m.forward({x}).toTensor();
      if (!y.is_contiguous()) y = y.contiguous();  // a no-op call through the dispatcher otherwise
      out.resize(y.nbytes());
      std::memcpy(out.data(), y.data_ptr(), y.nbytes());
    };
  } else if (mode == "shim") {
    if (char* err = ofa_load(argv[1], "cpu", OFA_FLOAT32, &shim)) {
      std::fprintf(stderr, "load: %s\n", err);
      return 1;
    }
    shim_in.dtype = OFA_FLOAT32;
    shim_in.ndim = 2;
    shim_in.shape[0] = batch;
    shim_in.shape[1] = features;
    shim_in.nbytes = static_cast<int64_t>(in_bytes);
    out.resize(1 << 16);
    call = [&]() {
      shim_out.nbytes = static_cast<int64_t>(out.size());
      ofa_forward_into_ret r = ofa_forward_into(shim, 1, &shim_in, in.data(), nullptr, nullptr, nullptr, 1, &shim_out,
                                                out.data(), nullptr, nullptr, nullptr);
      if (r.error != nullptr || r.result != nullptr) {
        std::fprintf(stderr, "forward: %s\n", r.error ? r.error : "output did not fit");
        std::exit(1);
      }
    };
  } else {
    std::fprintf(stderr, "unknown mode %s (want direct, borrow or shim)\n", mode.c_str());
    return 2;
  }
  for (int i = 0; i < 200; i++) call();  // let the profiling executor settle
  auto cpu_ns = []() {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
  };
  using clock = std::chrono::steady_clock;
  double cpu0 = cpu_ns();
  int64_t n = 0;
  auto start = clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    for (int i = 0; i < 100; i++) call();
    n += 100;
    elapsed = std::chrono::duration<double>(clock::now() - start).count();
  }
  double cpu = cpu_ns() - cpu0;
  std::printf("direct_ns_per_call %.1f\n", elapsed * 1e9 / static_cast<double>(n));
  std::printf("direct_cpu_ns_per_call %.1f\n", cpu / static_cast<double>(n));
  std::printf("direct_calls %lld\n", static_cast<long long>(n));
  if (shim != nullptr) ofa_unload(shim);
  return 0;
}
