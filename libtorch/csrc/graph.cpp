// graph.cpp: CUDA graphs of a staged forward, one per set of staged input shapes (a bucket). The CUDA part
// compiles only where CMake found the CUDA headers beside a CUDA libtorch (OFA_WITH_CUDA_GRAPHS); every
// other build, and every module on the CPU, answers with the reason and the eager path runs.
#include <torch/version.h>

#ifdef OFA_WITH_CUDA_GRAPHS
#include <ATen/cuda/CUDAGraph.h>
#include <cuda_runtime_api.h>  // cudaStreamCaptureMode
#endif

#include <mutex>

#include "staging.h"

namespace ofa {

struct Graph {
  std::vector<std::vector<int64_t>> shapes;  // the staged shapes: the key
  std::vector<at::Tensor> in;                // static device inputs, in the staged form
  std::vector<at::Tensor> norm;              // static normalized image inputs ([B,3,H,W] float32)
  std::vector<at::Tensor> out;               // static outputs, on the device
#ifdef OFA_WITH_CUDA_GRAPHS
  at::cuda::CUDAGraph graph;
#endif
};

const std::vector<std::vector<int64_t>>& graph_shapes(const Graph& g) { return g.shapes; }

#ifndef OFA_WITH_CUDA_GRAPHS

std::shared_ptr<Graph> capture_graph(ofa_staging* s, const std::vector<std::vector<int64_t>>&, std::string* reason) {
  if (!s->m->device.is_cuda()) {
    *reason = "CUDA graphs are not supported on cpu: the eager path runs every batch";
  } else {
    *reason = "this libofatorch was built without the CUDA headers (CMake found none beside libtorch_cuda), so it "
              "has no CUDA graphs: the eager path runs every batch";
  }
  return nullptr;
}

std::vector<at::Tensor> replay_graph(ofa_staging*, Graph&, const std::vector<at::Tensor>&) {
  throw Failure("replay: this libofatorch has no CUDA graphs");  // unreachable: no graph is ever captured
}

#else

namespace {
// One capture at a time in the process: captures of different instances would otherwise share the
// allocator's capture bookkeeping with each other's warm-up work.
std::mutex g_capture_mu;
}  // namespace

std::shared_ptr<Graph> capture_graph(ofa_staging* s, const std::vector<std::vector<int64_t>>& shapes,
                                     std::string* reason) {
  ofa_module* m = s->m;
  if (!m->device.is_cuda()) {
    *reason = "CUDA graphs are not supported on cpu: the eager path runs every batch";
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(g_capture_mu);
  c10::InferenceMode im;
  c10::StreamGuard guard(*m->stream);  // capture runs on the module's own (non-default) stream
  auto g = std::make_shared<Graph>();
  g->shapes = shapes;
  try {
    for (size_t i = 0; i < shapes.size(); i++) {
      const StagedInput& spec = s->inputs[i];
      g->in.push_back(at::zeros(shapes[i], at::TensorOptions().dtype(spec.dtype).device(m->device)));
      g->norm.push_back(spec.image ? at::empty(chw_shape(shapes[i]), at::TensorOptions().dtype(at::kFloat).device(m->device))
                                   : at::Tensor());
    }
    // Warm up outside the capture (lazy cuBLAS/cuDNN set-up, allocator pools), as torch.cuda.graph does.
    for (int k = 0; k < 2; k++) staged_device_forward(s, g->in, g->norm);
    m->stream->synchronize();
  } catch (const std::exception& e) {
    *reason = "warm-up before capture failed: " + describe(e) + " (the eager path runs these shapes)";
    return nullptr;
  }
  if (s->pool.first == 0 && s->pool.second == 0) s->pool = at::cuda::graph_pool_handle();
  std::string failed;
  try {
#if TORCH_VERSION_MAJOR >= 2
    // Thread-local: other threads (other instances serving) may allocate while this one captures.
    g->graph.capture_begin(s->pool, cudaStreamCaptureModeThreadLocal);
#else
    g->graph.capture_begin(s->pool);
#endif
  } catch (const std::exception& e) {
    *reason = "capture_begin failed: " + describe(e) + " (the eager path runs these shapes)";
    return nullptr;
  }
  try {
    g->out = staged_device_forward(s, g->in, g->norm);
  } catch (const std::exception& e) {
    failed = describe(e);
  }
  try {
    g->graph.capture_end();  // always: ends the stream's capture mode even after a failure
  } catch (const std::exception& e) {
    if (failed.empty()) failed = describe(e);
  }
  if (!failed.empty()) {
    *reason = "capture failed: " + failed + " (the eager path runs these shapes)";
    return nullptr;
  }
  for (const at::Tensor& t : g->out) {
    if (!t.defined() || !t.is_cuda()) {
      *reason = "captured forward returned a tensor that is not on the GPU (the eager path runs these shapes)";
      return nullptr;
    }
  }
  return g;
}

std::vector<at::Tensor> replay_graph(ofa_staging* s, Graph& g, const std::vector<at::Tensor>& dev) {
  for (size_t i = 0; i < dev.size(); i++) g.in[i].copy_(dev[i], /*non_blocking=*/true);  // device to device
  g.graph.replay();
  std::vector<at::Tensor> outs = g.out;
  // Blocking on the module's stream: the outputs are on the host before another replay may reuse the pool.
  to_host(&outs, s->m->precision);
  return outs;
}

#endif  // OFA_WITH_CUDA_GRAPHS

}  // namespace ofa
