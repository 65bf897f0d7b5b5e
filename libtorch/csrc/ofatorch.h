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
 * mode. precision is OFA_FLOAT32 (keep parameters as saved), OFA_FLOAT16 or OFA_BFLOAT16 (convert floating
 * parameters and buffers; float32 inputs are then converted to that type on the device, and outputs of
 * that type are returned as float32). */
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
