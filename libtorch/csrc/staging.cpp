// staging.cpp: staging sets (ofatorch.h, "Staging"): buffers allocated once per model instance (pinned on
// CUDA), host-to-device copies started on a copy stream so the next batch moves while the current one
// computes, image inputs sent as uint8 and normalized on the device, and the staged forward (eager, or
// replayed from a CUDA graph, graph.cpp). Device-generic: no CUDA header, like module.cpp.
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <c10/util/accumulate.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "staging.h"

namespace ofa {
namespace {

constexpr int32_t kMaxSlots = 16;

const char* state_name(SlotState s) {
  switch (s) {
    case SlotState::kFree:
      return "free";
    case SlotState::kStaged:
      return "staged";
    case SlotState::kRunning:
      return "running";
  }
  return "?";
}

// Reads and checks one input description of ofa_staging_new.
StagedInput parse_input(const ofa_staging_input& d, int32_t index, const c10::Device& device) {
  const std::string what = "staging input " + std::to_string(index);
  StagedInput in;
  if (!to_scalar_type(d.dtype, &in.dtype)) throw Failure(what + ": unknown dtype code " + std::to_string(d.dtype));
  if (d.ndim < 1 || d.ndim > OFA_INTO_MAX_DIMS) {
    throw Failure(what + ": rank " + std::to_string(d.ndim) + " (want 1 to " + std::to_string(OFA_INTO_MAX_DIMS) +
                  ")");
  }
  in.capacity = 1;
  for (int32_t k = 0; k < d.ndim; k++) {
    int64_t v = d.max_shape[k];
    if (v < 1) throw Failure(what + ": max shape " + shape_string(d.max_shape, d.ndim) + " has a dimension below 1");
    if (in.capacity > std::numeric_limits<int64_t>::max() / 8 / v) {
      throw Failure(what + ": max shape " + shape_string(d.max_shape, d.ndim) + " is too large");
    }
    in.capacity *= v;
    in.max_shape.push_back(v);
  }
  if (d.image == 0) return in;
  in.image = true;
  if (in.dtype != at::kByte || d.ndim != 4 || d.max_shape[3] != 3) {
    throw Failure(what + ": an image input is uint8 [B,H,W,3], got " + dtype_name(in.dtype) + " " +
                  shape_string(d.max_shape, d.ndim));
  }
  for (int c = 0; c < 3; c++) {
    if (!std::isfinite(d.mean[c]) || !std::isfinite(d.std[c]) || d.std[c] == 0) {
      throw Failure(what + ": normalization mean[" + std::to_string(c) + "] = " + std::to_string(d.mean[c]) +
                    ", std[" + std::to_string(c) + "] = " + std::to_string(d.std[c]) +
                    " (want finite values and a non-zero std)");
    }
  }
  auto opts = at::TensorOptions().dtype(at::kFloat);
  in.mean = at::tensor(c10::ArrayRef<float>(d.mean, 3), opts).view({1, 3, 1, 1}).to(device);
  in.std = at::tensor(c10::ArrayRef<float>(d.std, 3), opts).view({1, 3, 1, 1}).to(device);
  return in;
}

// Allocates a 1-D buffer of n elements and counts it.
at::Tensor buffer(ofa_staging* s, int64_t n, at::ScalarType t, const c10::Device& device, bool pinned) {
  at::Tensor b = at::empty({n}, at::TensorOptions().dtype(t).device(device).pinned_memory(pinned));
  s->buffer_allocations.fetch_add(1, std::memory_order_relaxed);
  s->buffer_bytes.fetch_add(static_cast<int64_t>(b.nbytes()), std::memory_order_relaxed);
  return b;
}

// Moves slot from one state to another under s->mu, or throws Failure saying what state it is in.
Slot& transition(ofa_staging* s, int32_t slot, SlotState from, SlotState to, const char* op) {
  if (slot < 0 || slot >= static_cast<int32_t>(s->slots.size())) {
    throw Failure(std::string(op) + ": no slot " + std::to_string(slot) + " (the staging has " +
                  std::to_string(s->slots.size()) + ")");
  }
  std::lock_guard<std::mutex> lock(s->mu);
  Slot& sl = s->slots[static_cast<size_t>(slot)];
  if (sl.state != from) {
    const char* hint = from == SlotState::kFree ? ": forward or release its batch first" : ": stage a batch first";
    throw Failure(std::string(op) + ": slot " + std::to_string(slot) + " is " + state_name(sl.state) + ", not " +
                  state_name(from) + hint);
  }
  sl.state = to;
  return sl;
}

void set_state(ofa_staging* s, Slot& sl, SlotState to) {
  std::lock_guard<std::mutex> lock(s->mu);
  sl.state = to;
}

// Image normalization in float32, in torchvision's order (ToTensor, then Normalize), each operation rounded
// to float32 as preprocess computes it on the host: x = float(k) / 255; d = x - mean; out = d / std. The
// divisor is a one-element device tensor, not a scalar: CUDA turns division by a host scalar into a
// multiplication by its reciprocal, which rounds differently.
void normalize_into(ofa_staging* s, const StagedInput& in, const at::Tensor& u8, const at::Tensor& out) {
  out.copy_(u8.permute({0, 3, 1, 2}));
  out.div_(s->k255);
  out.sub_(in.mean);
  out.div_(in.std);
}

// Outputs that share memory with a slot's buffers (a module returning its input) would change when the
// slot is staged again: give them memory of their own.
void unalias(const Slot& sl, std::vector<at::Tensor>* outs) {
  for (at::Tensor& t : *outs) {
    for (const auto* bufs : {&sl.host, &sl.device, &sl.normalized}) {
      for (const at::Tensor& b : *bufs) {
        if (b.defined() && t.is_alias_of(b)) {
          t = t.clone();
          break;
        }
      }
    }
  }
}

std::shared_ptr<Graph> find_graph(ofa_staging* s, const std::vector<std::vector<int64_t>>& shapes) {
  for (const auto& g : s->graphs) {
    if (graph_shapes(*g) == shapes) return g;
  }
  return nullptr;
}

}  // namespace

at::Tensor view_as_shape(const at::Tensor& flat, c10::IntArrayRef shape) {
  return flat.narrow(0, 0, c10::multiply_integers(shape)).view(shape);
}

std::vector<int64_t> chw_shape(const std::vector<int64_t>& hwc) { return {hwc[0], hwc[3], hwc[1], hwc[2]}; }

std::vector<at::Tensor> staged_device_forward(ofa_staging* s, const std::vector<at::Tensor>& dev,
                                              const std::vector<at::Tensor>& norm) {
  std::vector<at::Tensor> inputs;
  inputs.reserve(dev.size());
  for (size_t i = 0; i < dev.size(); i++) {
    if (s->inputs[i].image) {
      normalize_into(s, s->inputs[i], dev[i], norm[i]);
      inputs.push_back(norm[i]);
    } else {
      inputs.push_back(dev[i]);
    }
  }
  return call_forward(s->m, std::move(inputs));
}

}  // namespace ofa

extern "C" {

char* ofa_staging_new(ofa_module* m, int32_t n_slots, int32_t n_inputs, const ofa_staging_input* inputs,
                      ofa_staging** out) {
  if (m == nullptr || out == nullptr || (n_inputs > 0 && inputs == nullptr)) {
    return ofa::make_error("ofa_staging_new: NULL argument");
  }
  *out = nullptr;
  try {
    if (n_slots < 1 || n_slots > ofa::kMaxSlots) {
      throw ofa::Failure("staging: " + std::to_string(n_slots) + " slots (want 1 to " +
                         std::to_string(ofa::kMaxSlots) + ")");
    }
    if (n_inputs < 1 || n_inputs > OFA_INTO_MAX_TENSORS) {
      throw ofa::Failure("staging: " + std::to_string(n_inputs) + " inputs (want 1 to " +
                         std::to_string(OFA_INTO_MAX_TENSORS) + ")");
    }
    ofa::check_arity(m, n_inputs);
    c10::InferenceMode im;
    ofa::apply_thread_settings();
    std::optional<c10::StreamGuard> guard;
    if (m->stream) guard.emplace(*m->stream);
    auto s = std::make_unique<ofa_staging>();
    s->m = m;
    const bool cuda = m->device.is_cuda();
    s->pinned = cuda;
    for (int32_t i = 0; i < n_inputs; i++) s->inputs.push_back(ofa::parse_input(inputs[i], i, m->device));
    s->k255 = at::full({1}, 255.0f, at::TensorOptions().dtype(at::kFloat).device(m->device));
    if (cuda) {
      c10::impl::VirtualGuardImpl impl(c10::kCUDA);
      s->copy_stream = impl.getStreamFromGlobalPool(m->device, /*isHighPriority=*/false);
    }
    s->slots.resize(static_cast<size_t>(n_slots));
    for (ofa::Slot& sl : s->slots) {
      for (const ofa::StagedInput& in : s->inputs) {
        at::Tensor host = ofa::buffer(s.get(), in.capacity, in.dtype, c10::Device(c10::kCPU), cuda);
        sl.host.push_back(host);
        sl.device.push_back(cuda ? ofa::buffer(s.get(), in.capacity, in.dtype, m->device, false) : host);
        sl.normalized.push_back(in.image ? ofa::buffer(s.get(), in.capacity, at::kFloat, m->device, false)
                                         : at::Tensor());
        sl.shapes.emplace_back();
      }
      if (cuda) sl.copied.emplace(c10::DeviceType::CUDA);
    }
    *out = s.release();
    return nullptr;
  } catch (const ofa::Failure& e) {
    return ofa::make_error(e.what());
  } catch (const std::exception& e) {
    return ofa::make_error("staging: " + ofa::describe(e));
  } catch (...) {
    return ofa::make_error("staging: unknown C++ exception");
  }
}

void ofa_staging_free(ofa_staging* s) {
  if (s == nullptr) return;
  try {
    // Copies and forwards still queued must finish before their memory goes back to the allocators.
    if (s->copy_stream) s->copy_stream->synchronize();
    if (s->m->stream) s->m->stream->synchronize();
    delete s;
  } catch (...) {
  }
}

char* ofa_stage(ofa_staging* s, int32_t slot, int32_t n_in, const ofa_tensor_desc* in, const void* in0,
                const void* in1, const void* in2, const void* in3) {
  if (s == nullptr || (n_in > 0 && in == nullptr)) return ofa::make_error("ofa_stage: NULL argument");
  const void* const data[OFA_INTO_MAX_TENSORS] = {in0, in1, in2, in3};
  ofa::Slot* taken = nullptr;
  try {
    if (n_in != static_cast<int32_t>(s->inputs.size())) {
      throw ofa::Failure("stage: " + std::to_string(n_in) + " inputs, the staging was made for " +
                         std::to_string(s->inputs.size()));
    }
    // Refuse before working: every input is checked before any byte is copied.
    for (int32_t i = 0; i < n_in; i++) {
      const ofa_tensor_desc& d = in[i];
      const ofa::StagedInput& spec = s->inputs[static_cast<size_t>(i)];
      const std::string& name = s->m->arg_names[static_cast<size_t>(i)];
      if (d.ndim < 0 || d.ndim > OFA_INTO_MAX_DIMS) {
        throw ofa::Failure("stage: input " + std::to_string(i) + ": rank " + std::to_string(d.ndim));
      }
      at::ScalarType st = ofa::check_input(d.dtype, d.ndim, d.shape, data[i], d.nbytes, i, name);
      bool fits = st == spec.dtype && d.ndim == static_cast<int32_t>(spec.max_shape.size());
      for (int32_t k = 0; fits && k < d.ndim; k++) fits = d.shape[k] <= spec.max_shape[static_cast<size_t>(k)];
      if (spec.image && fits) fits = d.shape[3] == 3;
      if (!fits) {
        throw ofa::Failure("stage: input " + std::to_string(i) + " (" + name + ") is " + ofa::dtype_name(st) + " " +
                           ofa::shape_string(d.shape, d.ndim) + "; the staging takes " +
                           ofa::dtype_name(spec.dtype) + " up to " +
                           ofa::shape_string(spec.max_shape.data(), static_cast<int32_t>(spec.max_shape.size())) +
                           (spec.image ? " (an image input: [B,H,W,3])" : ""));
      }
    }
    taken = &ofa::transition(s, slot, ofa::SlotState::kFree, ofa::SlotState::kStaged, "stage");
    ofa::Slot& sl = *taken;
    c10::InferenceMode im;
    int64_t bytes = 0;
    for (int32_t i = 0; i < n_in; i++) {
      const ofa_tensor_desc& d = in[i];
      sl.shapes[static_cast<size_t>(i)].assign(d.shape, d.shape + d.ndim);
      if (d.nbytes > 0) std::memcpy(sl.host[static_cast<size_t>(i)].data_ptr(), data[i], static_cast<size_t>(d.nbytes));
      bytes += d.nbytes;
    }
    if (s->copy_stream) {
      // The copies queue on the copy stream and the call returns: the module's stream may be busy with the
      // previous batch meanwhile. The slot's event marks their end for ofa_staged_forward.
      c10::StreamGuard guard(*s->copy_stream);
      for (int32_t i = 0; i < n_in; i++) {
        if (in[i].nbytes == 0) continue;
        int64_t n = c10::multiply_integers(sl.shapes[static_cast<size_t>(i)]);
        sl.device[static_cast<size_t>(i)].narrow(0, 0, n).copy_(sl.host[static_cast<size_t>(i)].narrow(0, 0, n),
                                                                /*non_blocking=*/true);
      }
      sl.copied->record(*s->copy_stream);
    }
    s->staged.fetch_add(1, std::memory_order_relaxed);
    s->bytes_staged.fetch_add(bytes, std::memory_order_relaxed);
    return nullptr;
  } catch (const ofa::Failure& e) {
    if (taken != nullptr) ofa::set_state(s, *taken, ofa::SlotState::kFree);
    return ofa::make_error(e.what());
  } catch (const std::exception& e) {
    if (taken != nullptr) ofa::set_state(s, *taken, ofa::SlotState::kFree);
    return ofa::make_error("stage: " + ofa::describe(e));
  } catch (...) {
    if (taken != nullptr) ofa::set_state(s, *taken, ofa::SlotState::kFree);
    return ofa::make_error("stage: unknown C++ exception");
  }
}

ofa_forward_into_ret ofa_staged_forward(ofa_staging* s, int32_t slot, int32_t n_out, ofa_tensor_desc* outs,
                                        void* out0, void* out1, void* out2, void* out3) {
  ofa_forward_into_ret ret{0, nullptr, nullptr};
  if (s == nullptr || (n_out > 0 && outs == nullptr)) {
    ret.error = ofa::make_error("ofa_staged_forward: NULL argument");
    return ret;
  }
  if (n_out < 0 || n_out > OFA_INTO_MAX_TENSORS) {
    ret.error = ofa::make_error("ofa_staged_forward: at most " + std::to_string(OFA_INTO_MAX_TENSORS) +
                                " output buffers, got " + std::to_string(n_out));
    return ret;
  }
  void* const out_data[OFA_INTO_MAX_TENSORS] = {out0, out1, out2, out3};
  ofa::Slot* taken = nullptr;
  try {
    taken = &ofa::transition(s, slot, ofa::SlotState::kStaged, ofa::SlotState::kRunning, "staged forward");
    ofa::Slot& sl = *taken;
    ofa_module* m = s->m;
    c10::InferenceMode im;
    ofa::apply_thread_settings();
    std::optional<c10::StreamGuard> guard;
    if (m->stream) {
      guard.emplace(*m->stream);
      sl.copied->block(*m->stream);  // the module's stream waits for this slot's copies, the host does not
    }
    std::vector<at::Tensor> dev, norm;
    for (size_t i = 0; i < s->inputs.size(); i++) {
      dev.push_back(ofa::view_as_shape(sl.device[i], sl.shapes[i]));
      norm.push_back(s->inputs[i].image ? ofa::view_as_shape(sl.normalized[i], ofa::chw_shape(sl.shapes[i]))
                                        : at::Tensor());
    }
    std::vector<at::Tensor> res;
    if (std::shared_ptr<ofa::Graph> g = s->graphs.empty() ? nullptr : ofa::find_graph(s, sl.shapes)) {
      std::lock_guard<std::mutex> lock(s->replay_mu);
      res = ofa::replay_graph(s, *g, dev);
      s->graph_replays.fetch_add(1, std::memory_order_relaxed);
    } else {
      res = ofa::staged_device_forward(s, dev, norm);
      ofa::to_host(&res, m->precision);
      s->eager_forwards.fetch_add(1, std::memory_order_relaxed);
    }
    ofa::unalias(sl, &res);
    ofa::copy_into(std::move(res), n_out, outs, out_data, &ret);
  } catch (const ofa::Failure& e) {
    ret.error = ofa::make_error(e.what());
  } catch (const std::exception& e) {
    ret.error = ofa::make_error(ofa::describe(e));
  } catch (...) {
    ret.error = ofa::make_error("staged forward: unknown C++ exception");
  }
  if (taken != nullptr) ofa::set_state(s, *taken, ofa::SlotState::kFree);
  if (ret.error != nullptr) ret.n = 0;
  return ret;
}

char* ofa_staged_release(ofa_staging* s, int32_t slot) {
  if (s == nullptr) return ofa::make_error("ofa_staged_release: NULL argument");
  try {
    ofa::Slot& sl = ofa::transition(s, slot, ofa::SlotState::kStaged, ofa::SlotState::kRunning, "release");
    // The copies out of the slot's pinned memory must end before the next ofa_stage writes into it.
    try {
      if (s->copy_stream) s->copy_stream->synchronize();
    } catch (...) {
      ofa::set_state(s, sl, ofa::SlotState::kFree);
      throw;
    }
    ofa::set_state(s, sl, ofa::SlotState::kFree);
    return nullptr;
  } catch (const ofa::Failure& e) {
    return ofa::make_error(e.what());
  } catch (const std::exception& e) {
    return ofa::make_error("release: " + ofa::describe(e));
  }
}

ofa_capture_ret ofa_staging_capture(ofa_staging* s, int32_t n_in, const ofa_tensor_desc* shapes) {
  ofa_capture_ret ret{OFA_GRAPH_INVALID, nullptr};
  if (s == nullptr || (n_in > 0 && shapes == nullptr)) {
    ret.reason = ofa::make_error("ofa_staging_capture: NULL argument");
    return ret;
  }
  try {
    if (n_in != static_cast<int32_t>(s->inputs.size())) {
      throw ofa::Failure("capture: " + std::to_string(n_in) + " input shapes, the staging was made for " +
                         std::to_string(s->inputs.size()) + " inputs");
    }
    std::vector<std::vector<int64_t>> want;
    for (int32_t i = 0; i < n_in; i++) {
      const ofa_tensor_desc& d = shapes[i];
      const ofa::StagedInput& spec = s->inputs[static_cast<size_t>(i)];
      at::ScalarType st;
      bool ok = ofa::to_scalar_type(d.dtype, &st) && st == spec.dtype &&
                d.ndim == static_cast<int32_t>(spec.max_shape.size());
      for (int32_t k = 0; ok && k < d.ndim; k++) ok = d.shape[k] >= 1 && d.shape[k] <= spec.max_shape[static_cast<size_t>(k)];
      if (ok && spec.image) ok = d.shape[3] == 3;
      if (!ok) {
        int32_t nd = d.ndim < 0 || d.ndim > OFA_INTO_MAX_DIMS ? 0 : d.ndim;
        throw ofa::Failure("capture: input " + std::to_string(i) + " shape " + ofa::shape_string(d.shape, nd) +
                           " (dtype code " + std::to_string(d.dtype) + ") does not fit the staging's " +
                           ofa::dtype_name(spec.dtype) + " up to " +
                           ofa::shape_string(spec.max_shape.data(), static_cast<int32_t>(spec.max_shape.size())));
      }
      want.emplace_back(d.shape, d.shape + d.ndim);
    }
    if (ofa::find_graph(s, want) != nullptr) {
      ret.status = OFA_GRAPH_CAPTURED;  // already there: capturing twice is harmless
      return ret;
    }
    std::string reason;
    std::shared_ptr<ofa::Graph> g = ofa::capture_graph(s, want, &reason);
    if (g == nullptr) {
      ret.status = OFA_GRAPH_UNAVAILABLE;
      ret.reason = ofa::make_error(reason);
      return ret;
    }
    s->graphs.push_back(std::move(g));
    ret.status = OFA_GRAPH_CAPTURED;
  } catch (const ofa::Failure& e) {
    ret.reason = ofa::make_error(e.what());
  } catch (const std::exception& e) {
    ret.status = OFA_GRAPH_UNAVAILABLE;
    ret.reason = ofa::make_error("capture: " + ofa::describe(e));
  } catch (...) {
    ret.status = OFA_GRAPH_UNAVAILABLE;
    ret.reason = ofa::make_error("capture: unknown C++ exception");
  }
  return ret;
}

void ofa_staging_get_stats(ofa_staging* s, ofa_staging_stats* out) {
  *out = ofa_staging_stats{};
  if (s == nullptr) return;
  out->buffer_allocations = s->buffer_allocations.load(std::memory_order_relaxed);
  out->buffer_bytes = s->buffer_bytes.load(std::memory_order_relaxed);
  out->pinned = s->pinned ? 1 : 0;
  out->graphs = static_cast<int32_t>(s->graphs.size());
  out->staged = s->staged.load(std::memory_order_relaxed);
  out->bytes_staged = s->bytes_staged.load(std::memory_order_relaxed);
  out->eager_forwards = s->eager_forwards.load(std::memory_order_relaxed);
  out->graph_replays = s->graph_replays.load(std::memory_order_relaxed);
}

}  // extern "C"
