// internal.h: helpers shared by the shim's source files (not part of the C ABI).
#ifndef OFATORCH_INTERNAL_H
#define OFATORCH_INTERNAL_H

#include <torch/script.h>

#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "ofatorch.h"

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

}  // namespace ofa

#endif  // OFATORCH_INTERNAL_H
