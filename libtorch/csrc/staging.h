// staging.h: the staging set behind ofa_staging (staging.cpp) and its CUDA graphs (graph.cpp); not part of
// the C ABI.
#ifndef OFATORCH_STAGING_H
#define OFATORCH_STAGING_H

#include <c10/core/Event.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "internal.h"

namespace ofa {

// One forward input of a staging set, as ofa_staging_new was told.
struct StagedInput {
  at::ScalarType dtype = at::kFloat;  // the host dtype
  std::vector<int64_t> max_shape;     // its rank is the staged rank
  int64_t capacity = 0;               // elements: the product of max_shape
  bool image = false;                 // uint8 [B,H,W,3] -> float32 [B,3,H,W], normalized
  at::Tensor mean, std;               // image: float32 [1,3,1,1] on the module's device
};

enum class SlotState { kFree, kStaged, kRunning };

// One slot: a batch's buffers, reused by every batch staged into it.
struct Slot {
  std::vector<at::Tensor> host;        // per input: 1-D, capacity elements (pinned on CUDA)
  std::vector<at::Tensor> device;      // per input: 1-D on the device; the host tensor itself on the CPU
  std::vector<at::Tensor> normalized;  // per image input: float32 1-D on the device; undefined otherwise
  std::vector<std::vector<int64_t>> shapes;  // per input: the staged batch's shape
  std::optional<c10::Event> copied;    // CUDA: recorded on the copy stream after the slot's copies
  SlotState state = SlotState::kFree;  // guarded by ofa_staging::mu
};

// A forward captured for one set of staged shapes (graph.cpp).
struct Graph;

}  // namespace ofa

struct ofa_staging {
  ofa_module* m = nullptr;
  std::vector<ofa::StagedInput> inputs;
  std::vector<ofa::Slot> slots;
  std::optional<c10::Stream> copy_stream;  // CUDA: host-to-device copies run here, beside the compute
  at::Tensor k255;                         // float32 [1] holding 255 on the device (see normalize_into)
  std::mutex mu;                           // guards every slot's state

  // Graphs, appended by ofa_staging_capture (which no other call may race with) and read by forwards.
  std::vector<std::shared_ptr<ofa::Graph>> graphs;
  std::pair<unsigned long long, unsigned long long> pool{0, 0};  // the graphs' shared memory pool
  std::mutex replay_mu;  // graphs share one pool: one replay at a time, its outputs copied out inside

  std::atomic<int64_t> buffer_allocations{0}, buffer_bytes{0}, staged{0}, bytes_staged{0}, eager_forwards{0},
      graph_replays{0};
  bool pinned = false;
};

namespace ofa {

// Views the first numel(shape) elements of the 1-D buffer flat as shape.
at::Tensor view_as_shape(const at::Tensor& flat, c10::IntArrayRef shape);

// [B,H,W,3] -> [B,3,H,W].
std::vector<int64_t> chw_shape(const std::vector<int64_t>& hwc);

// Runs m's forward on staged device tensors (dev[i] in the staged shapes): image inputs are normalized into
// norm[i] ([B,3,H,W] float32) first. Returns forward's outputs, on the device.
std::vector<at::Tensor> staged_device_forward(ofa_staging* s, const std::vector<at::Tensor>& dev,
                                              const std::vector<at::Tensor>& norm);

// Captures a graph for the staged shapes, or returns null with *reason saying why not (graph.cpp).
std::shared_ptr<Graph> capture_graph(ofa_staging* s, const std::vector<std::vector<int64_t>>& shapes,
                                     std::string* reason);

// The staged shapes a graph was captured for.
const std::vector<std::vector<int64_t>>& graph_shapes(const Graph& g);

// Replays g on the staged device tensors dev and returns its outputs as host tensors (to_host). The caller
// holds InferenceMode, the module's stream and s->replay_mu.
std::vector<at::Tensor> replay_graph(ofa_staging* s, Graph& g, const std::vector<at::Tensor>& dev);

}  // namespace ofa

#endif  // OFATORCH_STAGING_H
