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

/* ---- Staging: reused buffers, asynchronous copies, image normalization on the device, CUDA graphs. ----
 *
 * A staging set belongs to one module (one model instance) and holds n_slots slots. Each slot holds, per
 * forward input, a host buffer and a device buffer of the capacity given at creation, allocated there once
 * and reused by every call: pinned host memory when the module is on CUDA; on the CPU plain host memory,
 * which is then also the device buffer. ofa_stage copies a batch into a free slot's host buffers and, on
 * CUDA, starts the host-to-device copies on the staging's own copy stream and returns without waiting;
 * ofa_staged_forward makes the module's stream wait for those copies, runs forward on the slot's device
 * tensors and copies the outputs into caller buffers as ofa_forward_into does. So batch N+1 can be staged
 * and copied while batch N computes: two slots are enough for that.
 *
 * An image input is sent as uint8 [B,H,W,3] (8-bit RGB rows, a quarter of the bytes of float32) and becomes
 * float32 [B,3,H,W] on the device: ((x / 255) - mean[c]) / std[c], each operation rounded to float32 in
 * that order (torchvision's ToTensor + Normalize, the CPU path of ofaserve's preprocess package), so on the
 * CPU the values are bit-identical to normalizing on the host. forward then converts it to the module's
 * reduced precision like any floating input.
 *
 * A slot is free, staged (after ofa_stage) or running (inside ofa_staged_forward); ofa_staged_forward and
 * ofa_staged_release make it free again. Calls on different slots may run at once; calls on one slot must
 * not. The module must outlive the staging: free the staging before ofa_unload.
 *
 * CUDA graphs: ofa_staging_capture records forward for one set of staged input shapes (a bucket) into a
 * CUDA graph; from then on a staged batch of exactly those shapes is replayed from the graph (inputs copied
 * into the graph's own device buffers, outputs copied out before the next replay), other shapes run
 * eagerly. Where capture is impossible (the CPU, a shim built without CUDA headers, a module that
 * synchronizes) it says why and the eager path stays in use. */

/* One forward input of a staging set. */
typedef struct {
  int32_t dtype;                        /* the host dtype (OFA_UINT8 for an image input) */
  int32_t ndim;                         /* the rank of every staged tensor of this input */
  int64_t max_shape[OFA_INTO_MAX_DIMS]; /* capacity: staged shapes may not exceed these, dim by dim */
  int32_t image;                        /* non-zero: uint8 [B,H,W,3] normalized into float32 [B,3,H,W] */
  float mean[3];                        /* image only: the per-channel normalization */
  float std[3];
} ofa_staging_input;

/* What a staging set has done, counted since ofa_staging_new. */
typedef struct {
  int64_t buffer_allocations; /* host and device buffers allocated: all at ofa_staging_new, none later */
  int64_t buffer_bytes;       /* their total size */
  int32_t pinned;             /* 1 when the host buffers are pinned (CUDA) */
  int32_t graphs;             /* CUDA graphs captured */
  int64_t staged;             /* batches staged */
  int64_t bytes_staged;       /* host bytes staged (on CUDA, the host-to-device traffic) */
  int64_t eager_forwards;     /* staged forwards run eagerly */
  int64_t graph_replays;      /* staged forwards replayed from a graph */
} ofa_staging_stats;

typedef struct ofa_staging ofa_staging;

/* Makes a staging set of n_slots (1..16) slots for m's forward with n_inputs (<= OFA_INTO_MAX_TENSORS)
 * inputs, allocating every buffer. */
OFA_API char* ofa_staging_new(ofa_module* m, int32_t n_slots, int32_t n_inputs, const ofa_staging_input* inputs,
                              ofa_staging** out);

/* Waits for the staging's copies and frees it. Must not race with other calls on it. */
OFA_API void ofa_staging_free(ofa_staging* s);

/* Stages n_in inputs, described by in[0..n_in) with data in0..in3, into slot, which must be free. Every
 * input is checked before anything is copied; on error the slot stays free. The shim keeps no pointer to
 * any argument after the call. */
OFA_API char* ofa_stage(ofa_staging* s, int32_t slot, int32_t n_in, const ofa_tensor_desc* in, const void* in0,
                        const void* in1, const void* in2, const void* in3);

/* Runs forward on the batch staged in slot and frees the slot, whatever the outcome. Outputs as
 * ofa_forward_into. */
OFA_API ofa_forward_into_ret ofa_staged_forward(ofa_staging* s, int32_t slot, int32_t n_out, ofa_tensor_desc* outs,
                                                void* out0, void* out1, void* out2, void* out3);

/* Frees a staged slot without running it (waiting for its copies first). */
OFA_API char* ofa_staged_release(ofa_staging* s, int32_t slot);

/* What ofa_staging_capture returns: status OFA_GRAPH_CAPTURED (reason NULL), OFA_GRAPH_UNAVAILABLE (no graph
 * for these shapes, the eager path runs them; reason says why) or OFA_GRAPH_INVALID (bad arguments; reason
 * says what). Free reason with ofa_free. */
enum { OFA_GRAPH_CAPTURED = 0, OFA_GRAPH_UNAVAILABLE = 1, OFA_GRAPH_INVALID = 2 };
typedef struct {
  int32_t status;
  char* reason;
} ofa_capture_ret;

/* Captures a CUDA graph of forward for staged inputs of the shapes in shapes[0..n_in) (dtype, ndim and
 * shape read; the staging's input order), running forward on zero-filled inputs of those shapes to warm up
 * and to record. Graphs of one staging share one memory pool: capture the largest bucket first. Must not
 * race with any other call on the staging or its module. */
OFA_API ofa_capture_ret ofa_staging_capture(ofa_staging* s, int32_t n_in, const ofa_tensor_desc* shapes);

OFA_API void ofa_staging_get_stats(ofa_staging* s, ofa_staging_stats* out);

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
