// internal.h: helpers shared by the shim's source files (not part of the C ABI).
#ifndef OFATORCH_INTERNAL_H
#define OFATORCH_INTERNAL_H

#include <torch/script.h>

#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ofatorch.h"

// A loaded module (module.cpp owns its life cycle; staging.cpp runs it too).
struct ofa_module {
  torch::jit::Module module;
  c10::Device device{c10::kCPU};
  std::optional<c10::Stream> stream;  // CUDA: this module's stream from the pool
  at::ScalarType precision = at::ScalarType::Undefined;  // reduced precision, or Undefined
  std::string schema;
  std::vector<std::string> arg_names;  // forward's arguments after self
  int32_t min_inputs = 0;
  int32_t max_inputs = 0;
};

namespace ofa {

// Copies msg into a malloc'd C string (the ABI's error convention).
char* make_error(const std::string& msg);

// The useful part of a libtorch exception: no C++ backtrace, no TorchScript traceback, bounded length.
std::string describe(const std::exception& e);

// OFA_* <-> ATen element types. to_scalar_type returns false for an unknown code.
bool to_scalar_type(int32_t code, at::ScalarType* out);
// Returns -1 for an ATen type the ABI does not carry.
int32_t from_scalar_type(at::ScalarType t);

// An error whose message is complete: the C entry points return what() as it is.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Builds the device tensor for input index from a host buffer of nbytes bytes (copied; pinned staging on
// CUDA). name is the schema's argument name, used in errors (built only when there is one).
at::Tensor input_tensor(int32_t dtype, int32_t ndim, const int64_t* shape, const void* data, int64_t nbytes,
                        int index, const std::string& name, const c10::Device& device);

// Flattens forward's result (a tensor, or tuples/lists of them, recursively) in order.
void flatten(const c10::IValue& v, std::vector<at::Tensor>* out);

// Turns outputs into contiguous host tensors of ofaserve dtypes, in place; cast_back (if not Undefined) is
// a reduced precision that is returned as float32. Throws for an undefined tensor or an unsupported dtype.
void to_host(std::vector<at::Tensor>* outputs, at::ScalarType cast_back);

// Applies the process-wide intra-op thread count on the calling thread if it is not in effect there yet
// (threads.cpp). Called at the start of every forward.
void apply_thread_settings();

// Wraps host tensors made by to_host in an ofa_result that describes them.
ofa_result* make_result(std::vector<at::Tensor> outputs);

// Throws Failure naming forward's arguments unless m's forward takes n inputs.
void check_arity(const ofa_module* m, int32_t n);

// Runs m's forward on inputs already on m's device and returns its outputs flattened, still on the device.
// Floating inputs are converted to m's reduced precision first (integer and bool inputs never are). The
// caller holds InferenceMode and m's stream. Throws Failure for an exception raised by forward.
std::vector<at::Tensor> call_forward(ofa_module* m, std::vector<at::Tensor> inputs);

// Turns forward's host outputs (to_host) into ofa_forward_into's answer: copied into out_data[0..n_out)
// and described in outs when all fit, else kept in ret->result.
void copy_into(std::vector<at::Tensor> res, int32_t n_out, ofa_tensor_desc* outs, void* const* out_data,
               ofa_forward_into_ret* ret);

// Checks the description of input index's host buffer (dtype code, rank, shape, size against the data)
// and returns its ATen type. name is the schema's argument name, used in errors (built only on error).
at::ScalarType check_input(int32_t dtype, int32_t ndim, const int64_t* shape, const void* data, int64_t nbytes,
                           int index, const std::string& name);

// Formats a shape as "[2,3]".
std::string shape_string(const int64_t* shape, int32_t ndim);

// The Go package's name of an ATen type ("float32"), or ATen's own name.
const char* dtype_name(at::ScalarType t);

}  // namespace ofa

#endif  // OFATORCH_INTERNAL_H
