// tensor.cpp: moving tensors across the C ABI (host buffers in, contiguous host copies out) and dtypes.
#include <ATen/EmptyTensor.h>

#include <cstring>
#include <limits>
#include <sstream>

#include "internal.h"

namespace ofa {
namespace {

struct DTypeEntry {
  int32_t code;
  at::ScalarType type;
  const char* name;  // as the Go package spells it
};

constexpr DTypeEntry kDTypes[] = {
    {OFA_FLOAT32, at::kFloat, "float32"}, {OFA_FLOAT16, at::kHalf, "float16"},
    {OFA_BFLOAT16, at::kBFloat16, "bfloat16"}, {OFA_INT64, at::kLong, "int64"},
    {OFA_INT32, at::kInt, "int32"},       {OFA_UINT8, at::kByte, "uint8"},
    {OFA_BOOL, at::kBool, "bool"},        {OFA_FLOAT64, at::kDouble, "float64"},
    {OFA_INT8, at::kChar, "int8"},        {OFA_INT16, at::kShort, "int16"},
};

// The per-result bookkeeping behind ofa_result::internal.
struct Result {
  ofa_result pub{};
  std::vector<at::Tensor> tensors;
  std::vector<ofa_tensor_out> outs;
};

}  // namespace

const char* dtype_name(at::ScalarType t) {
  for (const auto& e : kDTypes) {
    if (e.type == t) return e.name;
  }
  return c10::toString(t);
}

std::string shape_string(const int64_t* shape, int32_t ndim) {
  std::ostringstream s;
  s << "[";
  for (int32_t i = 0; i < ndim; i++) s << (i ? "," : "") << shape[i];
  s << "]";
  return s.str();
}

bool to_scalar_type(int32_t code, at::ScalarType* out) {
  for (const auto& e : kDTypes) {
    if (e.code == code) {
      *out = e.type;
      return true;
    }
  }
  return false;
}

int32_t from_scalar_type(at::ScalarType t) {
  for (const auto& e : kDTypes) {
    if (e.type == t) return e.code;
  }
  return -1;
}

at::ScalarType check_input(int32_t dtype, int32_t ndim, const int64_t* shape, const void* data, int64_t nbytes,
                           int index, const std::string& name) {
  // The error prefix is built only on the error path: this runs on every forward.
  auto what = [&]() { return "input " + std::to_string(index) + (name.empty() ? "" : " (" + name + ")"); };
  at::ScalarType st;
  if (!to_scalar_type(dtype, &st)) {
    throw std::invalid_argument(what() + ": unknown dtype code " + std::to_string(dtype));
  }
  if (ndim < 0 || ndim > 64 || (ndim > 0 && shape == nullptr)) {
    throw std::invalid_argument(what() + ": invalid rank " + std::to_string(ndim));
  }
  int64_t numel = 1;
  for (int32_t i = 0; i < ndim; i++) {
    int64_t d = shape[i];
    if (d < 0) throw std::invalid_argument(what() + ": negative dimension in shape " + shape_string(shape, ndim));
    if (d != 0 && numel > std::numeric_limits<int64_t>::max() / d) {
      throw std::invalid_argument(what() + ": shape " + shape_string(shape, ndim) + " is too large");
    }
    numel *= d;
  }
  const int64_t elem = static_cast<int64_t>(c10::elementSize(st));
  if (numel > std::numeric_limits<int64_t>::max() / elem) {
    throw std::invalid_argument(what() + ": shape " + shape_string(shape, ndim) + " is too large");
  }
  int64_t want = numel * elem;
  if (want != nbytes) {
    throw std::invalid_argument(what() + ": shape " + shape_string(shape, ndim) + " of " + dtype_name(st) +
                                " needs " + std::to_string(want) + " bytes, got " + std::to_string(nbytes));
  }
  if (want > 0 && data == nullptr) throw std::invalid_argument(what() + ": no data");
  return st;
}

at::Tensor input_tensor(int32_t dtype, int32_t ndim, const int64_t* shape, const void* data, int64_t nbytes,
                        int index, const std::string& name, const c10::Device& device) {
  at::ScalarType st = check_input(dtype, ndim, shape, data, nbytes, index, name);
  const int64_t want = nbytes;
  c10::IntArrayRef sizes(shape, static_cast<size_t>(ndim));
  if (device.is_cpu()) {
    // A private copy: the module may write to its inputs or keep them, and outputs may alias them. The
    // allocation goes straight to the CPU allocator (what at::empty ends up calling) without a trip
    // through the dispatcher; under InferenceMode the tensor is an inference tensor either way.
    at::Tensor t(at::detail::empty_cpu(sizes, st));
    if (want > 0) std::memcpy(t.data_ptr(), data, static_cast<size_t>(want));
    return t;
  }
  // Stage in pinned memory so the host-to-device copy is asynchronous on the module's stream.
  at::Tensor host = at::empty(sizes, at::TensorOptions().dtype(st).pinned_memory(true));
  if (want > 0) std::memcpy(host.data_ptr(), data, static_cast<size_t>(want));
  return host.to(device, /*non_blocking=*/true);
}

void flatten(const c10::IValue& v, std::vector<at::Tensor>* out) {
  if (v.isTensor()) {
    out->push_back(v.toTensor());
  } else if (v.isTuple()) {
    for (const auto& e : v.toTuple()->elements()) flatten(e, out);
  } else if (v.isList()) {
    c10::List<c10::IValue> l = v.toList();
    for (size_t i = 0; i < l.size(); i++) flatten(l.get(i), out);
  } else if (v.isInt()) {
    out->push_back(at::scalar_tensor(v.toInt(), at::TensorOptions().dtype(at::kLong)));
  } else if (v.isBool()) {
    out->push_back(at::scalar_tensor(v.toBool(), at::TensorOptions().dtype(at::kBool)));
  } else if (v.isDouble()) {
    out->push_back(at::scalar_tensor(v.toDouble(), at::TensorOptions().dtype(at::kDouble)));
  } else {
    throw std::invalid_argument("forward returned a value of type " + v.type()->str() +
                                "; only tensors, numbers and tuples/lists of them are supported");
  }
}

void to_host(std::vector<at::Tensor>* outputs, at::ScalarType cast_back) {
  for (size_t i = 0; i < outputs->size(); i++) {
    at::Tensor& t = (*outputs)[i];
    if (!t.defined()) throw std::invalid_argument("output " + std::to_string(i) + " is an undefined tensor");
    if (cast_back != at::ScalarType::Undefined && t.scalar_type() == cast_back) t = t.to(at::kFloat);
    if (from_scalar_type(t.scalar_type()) < 0) {
      throw std::invalid_argument("output " + std::to_string(i) + " has dtype " +
                                  std::string(c10::toString(t.scalar_type())) +
                                  ", which has no ofaserve dtype; convert it inside the module");
    }
    // Blocking copy on the current (module's) stream, so the data is ready when we return.
    if (!t.is_cpu()) t = t.to(at::kCPU);
    if (!t.is_contiguous()) t = t.contiguous();
  }
}

ofa_result* make_result(std::vector<at::Tensor> outputs) {
  auto r = std::make_unique<Result>();
  r->tensors = std::move(outputs);
  r->outs.resize(r->tensors.size());
  for (size_t i = 0; i < r->tensors.size(); i++) {
    const at::Tensor& t = r->tensors[i];
    ofa_tensor_out& o = r->outs[i];
    o.dtype = from_scalar_type(t.scalar_type());
    o.ndim = static_cast<int32_t>(t.dim());
    o.shape = t.sizes().data();
    o.nbytes = static_cast<int64_t>(t.nbytes());
    o.data = o.nbytes > 0 ? t.data_ptr() : nullptr;
  }
  r->pub.n = static_cast<int32_t>(r->outs.size());
  r->pub.outputs = r->outs.data();
  r->pub.internal = r.get();
  return &r.release()->pub;
}

}  // namespace ofa

extern "C" {

void ofa_result_free(ofa_result* r) {
  if (r != nullptr) delete static_cast<ofa::Result*>(r->internal);
}

int32_t ofa_dtype_size(int32_t dtype) {
  at::ScalarType st;
  if (!ofa::to_scalar_type(dtype, &st)) return 0;
  return static_cast<int32_t>(c10::elementSize(st));
}

}  // extern "C"
