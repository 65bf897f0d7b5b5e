/*
 * ofatorch.h: the plain C ABI of ofaserve's libtorch shim (libofatorch.so).
 *
 * Conventions:
 *  - Every function that can fail returns NULL on success or an error message allocated with malloc;
 *    the caller releases it with ofa_free. No C++ exception ever crosses this boundary.
 *  - Each call sets InferenceMode, the module's device and (on CUDA) the module's stream itself, so
 *    callers may use any OS thread for any call.
 *  - A module may be used by many threads at once (concurrent ofa_forward on one module is allowed);
 *    ofa_unload must not race with other calls on the same module.
 *  - Tensors cross the boundary as row-major, contiguous, little-endian host buffers.
 */
#ifndef OFATORCH_H
#define OFATORCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(OFA_BUILDING_SHIM)
#define OFA_API __attribute__((visibility("default")))
#else
#define OFA_API
#endif

/* Element types. The numbering is part of the ABI (the Go package mirrors it). */
enum {
  OFA_FLOAT32 = 0,
  OFA_FLOAT16 = 1,
  OFA_BFLOAT16 = 2,
  OFA_INT64 = 3,
  OFA_INT32 = 4,
  OFA_UINT8 = 5,
  OFA_BOOL = 6,
  OFA_FLOAT64 = 7,
  OFA_INT8 = 8,
  OFA_INT16 = 9,
};

/* An input tensor: the shim copies data during ofa_forward and keeps no reference to it afterwards. */
typedef struct {
  int32_t dtype;
  int32_t ndim;
  const int64_t* shape; /* ndim entries */
  const void* data;     /* nbytes bytes; may be NULL when nbytes == 0 */
  int64_t nbytes;
} ofa_tensor_in;

/* An output tensor, owned by the ofa_result it belongs to. */
typedef struct {
  int32_t dtype;
  int32_t ndim;
  const int64_t* shape;
  const void* data;
  int64_t nbytes;
} ofa_tensor_out;

/* The outputs of one forward call, flattened in order (a tensor, or tuples/lists of tensors).
 * Valid until ofa_result_free. */
typedef struct {
  int32_t n;
  const ofa_tensor_out* outputs;
  void* internal; /* the shim's bookkeeping; do not touch */
} ofa_result;

typedef struct ofa_module ofa_module;

/* Loads the TorchScript file at path onto device ("cpu", "cuda", "cuda:N"; NULL or "" means cpu) in eval
 * mode. precision is OFA_FLOAT32 (keep parameters as saved), OFA_FLOAT16 or OFA_BFLOAT16: convert the
 * floating-point parameters and buffers (integer and bool ones, such as index buffers, stay as saved);
 * floating inputs are then converted to that type on the device (integer and bool inputs never are), and
 * outputs of that type are returned as float32. */
OFA_API char* ofa_load(const char* path, const char* device, int32_t precision, ofa_module** out);

/* Frees the module. Must not race with any other call on the same module. */
OFA_API void ofa_unload(ofa_module* m);

/* The forward schema, e.g. "forward(__torch__.M self, Tensor x, Tensor ids) -> Tensor". Valid until
 * ofa_unload. */
OFA_API const char* ofa_module_schema(const ofa_module* m);

/* Number of inputs forward requires at least and accepts at most (self not counted). */
OFA_API void ofa_module_arity(const ofa_module* m, int32_t* min_inputs, int32_t* max_inputs);

/* What ofa_forward returns: exactly one of result (free with ofa_result_free) and error (free with
 * ofa_free) is non-NULL. Returned by value so that callers need no out-parameter. */
typedef struct {
  ofa_result* result;
  char* error;
} ofa_forward_ret;

/* Runs forward on n inputs. */
OFA_API ofa_forward_ret ofa_forward(ofa_module* m, const ofa_tensor_in* inputs, int32_t n);

OFA_API void ofa_result_free(ofa_result* r);

/* ---- The one-call path: forward with inputs and outputs described in pointer-free structs. ----
 *
 * ofa_forward_into does what ofa_forward does, but takes the data pointers as plain arguments and copies
 * the outputs straight into caller-owned buffers, so that a caller whose memory is managed by a garbage
 * collector (Go) needs no pinning and, in the steady state, a single call per forward. It covers up to
 * OFA_INTO_MAX_TENSORS inputs and outputs of rank up to OFA_INTO_MAX_DIMS; anything larger goes through
 * the result (see below) or through ofa_forward. */
#define OFA_INTO_MAX_TENSORS 4
#define OFA_INTO_MAX_DIMS 8

/* Describes one tensor. For an input: dtype, ndim, shape and nbytes (the size of its data). For an output
 * buffer: on entry nbytes is the buffer's capacity; on return dtype, ndim, shape and nbytes describe the
 * output written into it. */
typedef struct {
  int32_t dtype;
  int32_t ndim;
  int64_t nbytes;
  int64_t shape[OFA_INTO_MAX_DIMS];
} ofa_tensor_desc;

/* What ofa_forward_into returns. On error, only error is set (free with ofa_free). On success, n is the
 * number of outputs forward produced and either
 *  - result is NULL: every output was copied into its buffer and described in outs[0..n), or
 *  - result is non-NULL (free with ofa_result_free): the outputs did not all fit (more than n_out outputs,
 *    a buffer too small, a rank above OFA_INTO_MAX_DIMS); nothing was copied and the result holds all of
 *    them, exactly as ofa_forward returns them. The caller copies from it and may grow its buffers. */
typedef struct {
  int32_t n;
  ofa_result* result;
  char* error;
} ofa_forward_into_ret;

/* Runs forward on n_in (<= OFA_INTO_MAX_TENSORS) inputs described by in[0..n_in), whose data are in0..in3
 * (unused ones may be NULL), and copies the outputs into out0..out3, described by outs[0..n_out)
 * (n_out <= OFA_INTO_MAX_TENSORS). The shim keeps no pointer to any argument after the call. */
OFA_API ofa_forward_into_ret ofa_forward_into(ofa_module* m, int32_t n_in, const ofa_tensor_desc* in,
                                              const void* in0, const void* in1, const void* in2,
                                              const void* in3, int32_t n_out, ofa_tensor_desc* outs,
                                              void* out0, void* out1, void* out2, void* out3);

/* ---- CPU threads. libtorch's thread settings are process-wide: they apply to every module. ---- */

/* Sets the number of threads one op may use (intra-op parallelism, at::set_num_threads); n >= 1. Every
 * later call on any thread uses it: the shim re-applies it on a thread whose OpenMP setting is older. */
OFA_API char* ofa_set_num_threads(int32_t n);

/* The intra-op thread count calls use now (at::get_num_threads). */
OFA_API int32_t ofa_get_num_threads(void);

/* The count last set with ofa_set_num_threads, or 0 if it was never called (libtorch's default applies:
 * OMP_NUM_THREADS, else the number of physical cores). */
OFA_API int32_t ofa_requested_num_threads(void);

/* Sets the size of the inter-op thread pool (TorchScript fork; at::set_num_interop_threads); n >= 1.
 * libtorch accepts this once, and only before any inter-op work has started: later calls fail. */
OFA_API char* ofa_set_num_interop_threads(int32_t n);

/* The inter-op pool's size, or the size it will have when it starts. */
OFA_API int32_t ofa_get_num_interop_threads(void);

/* Device facts. */
OFA_API int32_t ofa_cuda_available(void);
OFA_API int32_t ofa_device_count(void);
OFA_API char* ofa_memory_info(int32_t device, uint64_t* free_bytes, uint64_t* total_bytes);

/* Bytes per element of an OFA_* dtype, or 0 when unknown. */
OFA_API int32_t ofa_dtype_size(int32_t dtype);

OFA_API void ofa_free(void* p);

#ifdef __cplusplus
}
#endif

#endif /* OFATORCH_H */
