// bench_direct.cpp: the baseline for the shim's per-call overhead. Calls a TorchScript module directly
// through torch::jit in a loop, as a C++ server would: wrap a host buffer (no copy), forward, copy the
// output to a host buffer.
// Usage: ofatorch_bench_direct <model.pt> <batch> <features> <seconds>
// Prints: direct_ns_per_call <wall ns> and direct_cpu_ns_per_call <process CPU ns> (user+system time of
// the whole process, the steadier figure on a busy machine).
#include <sys/resource.h>
#include <torch/script.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s <model.pt> <batch> <features> <seconds>\n", argv[0]);
    return 2;
  }
  const int64_t batch = std::atoll(argv[2]), features = std::atoll(argv[3]);
  const double seconds = std::atof(argv[4]);
  torch::jit::Module m = torch::jit::load(argv[1]);
  m.eval();
  std::vector<float> in(static_cast<size_t>(batch * features));
  for (size_t i = 0; i < in.size(); i++) in[i] = static_cast<float>(i % 7) * 0.25f - 0.5f;
  std::vector<char> out;
  auto call = [&]() {
    c10::InferenceMode im;
    at::Tensor x = torch::from_blob(in.data(), {batch, features}, at::kFloat);
    at::Tensor y = m.forward({x}).toTensor().contiguous();
    out.resize(y.nbytes());
    std::memcpy(out.data(), y.data_ptr(), y.nbytes());
  };
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
  return 0;
}
