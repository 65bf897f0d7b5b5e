/* capi_test.c: exercises libofatorch's C ABI the way a non-Go caller would: load, forward, compare with
 * Python's recorded outputs, error paths, and that a module stays usable after an error.
 * Usage: ofatorch_capi_test <fixtures dir>  (made by libtorch/testdata/make_fixtures.py) */
#define _GNU_SOURCE /* RTLD_DEFAULT */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofatorch.h"

static int failures = 0;
static const char* dir;

#define CHECK(cond, ...)                                  \
  do {                                                    \
    if (!(cond)) {                                        \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                       \
      fprintf(stderr, "\n");                              \
      failures++;                                         \
    }                                                     \
  } while (0)

static void* read_file(const char* name, long* size) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE* f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  *size = ftell(f);
  fseek(f, 0, SEEK_SET);
  void* buf = malloc(*size > 0 ? (size_t)*size : 1);
  if (fread(buf, 1, (size_t)*size, f) != (size_t)*size) {
    fprintf(stderr, "short read %s\n", path);
    exit(2);
  }
  fclose(f);
  return buf;
}

static char* path_of(const char* name) {
  static char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return path;
}

/* Expects err to be non-NULL and to contain want; frees it. */
static void expect_error(char* err, const char* want, const char* what) {
  CHECK(err != NULL, "%s: expected an error containing \"%s\", got success", what, want);
  if (err == NULL) return;
  CHECK(strstr(err, want) != NULL, "%s: error \"%s\" does not contain \"%s\"", what, err, want);
  printf("ok   %s: %s\n", what, err);
  ofa_free(err);
}

/* Runs the multi-input fixture (x: f32[B,4], ids: i64[B,3] -> f32[B,8]) at batch 2 and compares with Python. */
static void check_multi(ofa_module* m, const char* what) {
  long xs, is, os;
  float* x = read_file("multi/b2_in0.bin", &xs);
  int64_t* ids = read_file("multi/b2_in1.bin", &is);
  float* want = read_file("multi/b2_out0.bin", &os);
  int64_t xshape[2] = {2, 4}, ishape[2] = {2, 3};
  ofa_tensor_in in[2] = {{OFA_FLOAT32, 2, xshape, x, xs}, {OFA_INT64, 2, ishape, ids, is}};
  ofa_forward_ret ret = ofa_forward(m, in, 2);
  ofa_result* r = ret.result;
  char* err = ret.error;
  CHECK(err == NULL && r != NULL, "%s: forward failed: %s", what, err ? err : "");
  if (err == NULL) {
    CHECK(r->n == 1, "%s: %d outputs, want 1", what, r->n);
    const ofa_tensor_out* o = &r->outputs[0];
    CHECK(o->dtype == OFA_FLOAT32 && o->ndim == 2 && o->shape[0] == 2 && o->shape[1] == 8,
          "%s: output dtype %d ndim %d", what, o->dtype, o->ndim);
    CHECK(o->nbytes == os, "%s: output %lld bytes, want %ld", what, (long long)o->nbytes, os);
    double maxdiff = 0;
    for (long i = 0; i < os / 4 && o->nbytes == os; i++) {
      double d = fabs((double)((const float*)o->data)[i] - (double)want[i]);
      if (d > maxdiff) maxdiff = d;
    }
    CHECK(maxdiff <= 1e-6, "%s: max abs diff %g", what, maxdiff);
    printf("ok   %s: max abs diff %g\n", what, maxdiff);
    ofa_result_free(r);
  } else {
    ofa_free(err);
  }
  free(x);
  free(ids);
  free(want);
}

/* The one-call path on the multi fixture at batch 2: outputs land in the caller's buffer when it fits;
 * a buffer one byte short gets the whole result back instead, untouched buffer; limits are errors. */
static void check_multi_into(ofa_module* m) {
  long xs, is, os;
  float* x = read_file("multi/b2_in0.bin", &xs);
  int64_t* ids = read_file("multi/b2_in1.bin", &is);
  float* want = read_file("multi/b2_out0.bin", &os);
  ofa_tensor_desc in[2] = {{OFA_FLOAT32, 2, xs, {2, 4}}, {OFA_INT64, 2, is, {2, 3}}};
  float buf[64];
  ofa_tensor_desc out[1];
  out[0].nbytes = sizeof buf;
  memset(buf, 0, sizeof buf);
  ofa_forward_into_ret r = ofa_forward_into(m, 2, in, x, ids, NULL, NULL, 1, out, buf, NULL, NULL, NULL);
  CHECK(r.error == NULL && r.result == NULL && r.n == 1, "forward_into: error %s, result %p, n %d",
        r.error ? r.error : "", (void*)r.result, r.n);
  if (r.error == NULL && r.result == NULL) {
    CHECK(out[0].dtype == OFA_FLOAT32 && out[0].ndim == 2 && out[0].shape[0] == 2 && out[0].shape[1] == 8 &&
              out[0].nbytes == os,
          "forward_into: output dtype %d ndim %d nbytes %lld", out[0].dtype, out[0].ndim, (long long)out[0].nbytes);
    double maxdiff = 0;
    for (long i = 0; i < os / 4; i++) {
      double d = fabs((double)buf[i] - (double)want[i]);
      if (d > maxdiff) maxdiff = d;
    }
    CHECK(maxdiff <= 1e-6, "forward_into: max abs diff %g", maxdiff);
    printf("ok   forward_into into the caller's buffer (max abs diff %g)\n", maxdiff);
  }
  ofa_free(r.error);
  ofa_result_free(r.result);

  memset(buf, 0, sizeof buf);
  out[0].nbytes = os - 1;
  r = ofa_forward_into(m, 2, in, x, ids, NULL, NULL, 1, out, buf, NULL, NULL, NULL);
  CHECK(r.error == NULL && r.result != NULL && r.n == 1 && r.result->n == 1 && r.result->outputs[0].nbytes == os,
        "forward_into, buffer too small: error %s, result %p", r.error ? r.error : "", (void*)r.result);
  CHECK(buf[0] == 0, "forward_into wrote into a buffer that was too small");
  if (r.result != NULL && r.result->outputs[0].nbytes == os) {
    const float* got = (const float*)r.result->outputs[0].data;
    double maxdiff = 0;
    for (long i = 0; i < os / 4; i++) {
      double d = fabs((double)got[i] - (double)want[i]);
      if (d > maxdiff) maxdiff = d;
    }
    CHECK(maxdiff <= 1e-6, "forward_into, buffer too small: result max abs diff %g", maxdiff);
    printf("ok   forward_into returns the result when the buffer is too small\n");
  }
  ofa_free(r.error);
  ofa_result_free(r.result);

  expect_error(ofa_forward_into(m, 5, in, x, ids, NULL, NULL, 1, out, buf, NULL, NULL, NULL).error, "at most 4",
               "forward_into, five inputs");
  ofa_tensor_desc deep[2] = {{OFA_FLOAT32, 9, xs, {2, 4}}, {OFA_INT64, 2, is, {2, 3}}};
  expect_error(ofa_forward_into(m, 2, deep, x, ids, NULL, NULL, 1, out, buf, NULL, NULL, NULL).error, "rank 9",
               "forward_into, rank 9");
  expect_error(ofa_forward_into(m, 2, in, x, NULL, NULL, NULL, 1, out, buf, NULL, NULL, NULL).error, "no data",
               "forward_into, missing data pointer");
  free(x);
  free(ids);
  free(want);
}

/* A staging set on the multi fixture: staged forwards match Python, slots cycle, misuse is refused with a
 * message naming the slot's state, and capturing a graph on the CPU answers "not supported on cpu". */
static void check_staging(ofa_module* m) {
  long xs, is, os;
  float* x = read_file("multi/b2_in0.bin", &xs);
  int64_t* ids = read_file("multi/b2_in1.bin", &is);
  float* want = read_file("multi/b2_out0.bin", &os);
  ofa_staging_input spec[2] = {{OFA_FLOAT32, 2, {16, 4}, 0, {0}, {0}}, {OFA_INT64, 2, {16, 3}, 0, {0}, {0}}};
  ofa_staging* s = NULL;
  char* err = ofa_staging_new(m, 2, 2, spec, &s);
  CHECK(err == NULL && s != NULL, "staging_new: %s", err ? err : "");
  if (err != NULL) {
    ofa_free(err);
    return;
  }
  ofa_staging_stats st0;
  ofa_staging_get_stats(s, &st0);
  CHECK(st0.buffer_allocations == 4 && st0.pinned == 0, "staging stats: %lld buffers, pinned %d",
        (long long)st0.buffer_allocations, st0.pinned);
  ofa_tensor_desc in[2] = {{OFA_FLOAT32, 2, xs, {2, 4}}, {OFA_INT64, 2, is, {2, 3}}};
  float buf[64];
  ofa_tensor_desc out[1];
  for (int k = 0; k < 6; k++) {
    int slot = k % 2;
    err = ofa_stage(s, slot, 2, in, x, ids, NULL, NULL);
    CHECK(err == NULL, "stage into slot %d: %s", slot, err ? err : "");
    ofa_free(err);
    out[0].nbytes = sizeof buf;
    ofa_forward_into_ret r = ofa_staged_forward(s, slot, 1, out, buf, NULL, NULL, NULL);
    CHECK(r.error == NULL && r.result == NULL && r.n == 1 && out[0].nbytes == os, "staged forward %d: %s", k,
          r.error ? r.error : "");
    double maxdiff = 0;
    for (long i = 0; r.error == NULL && i < os / 4; i++) {
      double d = fabs((double)buf[i] - (double)want[i]);
      if (d > maxdiff) maxdiff = d;
    }
    CHECK(maxdiff <= 1e-6, "staged forward %d: max abs diff %g", k, maxdiff);
    ofa_free(r.error);
    ofa_result_free(r.result);
  }
  printf("ok   six staged forwards through two slots match Python\n");
  ofa_staging_stats st;
  ofa_staging_get_stats(s, &st);
  CHECK(st.buffer_allocations == st0.buffer_allocations && st.staged == 6 && st.eager_forwards == 6 &&
            st.graph_replays == 0 && st.bytes_staged == 6 * (xs + is),
        "staging stats after 6: %lld buffers, %lld staged, %lld eager, %lld bytes", (long long)st.buffer_allocations,
        (long long)st.staged, (long long)st.eager_forwards, (long long)st.bytes_staged);

  expect_error(ofa_staged_forward(s, 0, 1, out, buf, NULL, NULL, NULL).error, "slot 0 is free, not staged",
               "staged forward of a free slot");
  err = ofa_stage(s, 1, 2, in, x, ids, NULL, NULL);
  CHECK(err == NULL, "stage: %s", err ? err : "");
  ofa_free(err);
  expect_error(ofa_stage(s, 1, 2, in, x, ids, NULL, NULL), "slot 1 is staged, not free", "stage twice");
  err = ofa_staged_release(s, 1);
  CHECK(err == NULL, "release: %s", err ? err : "");
  ofa_free(err);
  expect_error(ofa_staged_release(s, 1), "slot 1 is free", "release twice");
  expect_error(ofa_stage(s, 2, 2, in, x, ids, NULL, NULL), "no slot 2", "stage into slot 2 of 2");
  ofa_tensor_desc big[2] = {{OFA_FLOAT32, 2, 17 * 16, {17, 4}}, {OFA_INT64, 2, 17 * 24, {17, 3}}};
  float* bx = calloc(17 * 4, sizeof(float));
  int64_t* bi = calloc(17 * 3, sizeof(int64_t));
  expect_error(ofa_stage(s, 0, 2, big, bx, bi, NULL, NULL), "up to [16,4]", "stage above capacity");
  free(bx);
  free(bi);
  expect_error(ofa_stage(s, 0, 1, in, x, NULL, NULL, NULL), "1 inputs, the staging was made for 2", "stage one input");
  ofa_staging_input bad[2] = {{OFA_FLOAT32, 2, {16, 4}, 1, {0}, {1, 1, 1}}, spec[1]};
  ofa_staging* s2 = NULL;
  expect_error(ofa_staging_new(m, 2, 2, bad, &s2), "an image input is uint8 [B,H,W,3]", "float image input");
  expect_error(ofa_staging_new(m, 2, 1, spec, &s2), "wrong number of inputs", "staging of one input for two");

  ofa_capture_ret c = ofa_staging_capture(s, 2, in);
  CHECK(c.status == OFA_GRAPH_UNAVAILABLE && c.reason != NULL && strstr(c.reason, "not supported on cpu") != NULL,
        "capture on cpu: status %d, reason %s", c.status, c.reason ? c.reason : "");
  if (c.reason) printf("ok   capture on cpu: %s\n", c.reason);
  ofa_free(c.reason);
  c = ofa_staging_capture(s, 2, big);
  CHECK(c.status == OFA_GRAPH_INVALID && c.reason != NULL, "capture above capacity: status %d", c.status);
  ofa_free(c.reason);
  ofa_staging_free(s);
  free(x);
  free(ids);
  free(want);
}

/* The inter-op pool: libtorch takes one setting, before the pool starts; the second is refused. Must run
 * before anything could start inter-op work. */
static void check_interop_threads(void) {
  int32_t n = ofa_get_num_interop_threads() + 1;
  char* err = ofa_set_num_interop_threads(n);
  CHECK(err == NULL, "first ofa_set_num_interop_threads(%d): %s", n, err ? err : "");
  ofa_free(err);
  CHECK(ofa_get_num_interop_threads() == n, "inter-op threads %d after setting %d", ofa_get_num_interop_threads(), n);
  expect_error(ofa_set_num_interop_threads(n + 1), "inter-op threads", "second inter-op setting");
  CHECK(ofa_get_num_interop_threads() == n, "a refused setting changed the inter-op pool to %d", ofa_get_num_interop_threads());
  expect_error(ofa_set_num_interop_threads(0), "at least 1", "zero inter-op threads");
}

/* A thread that runs a forward whenever it is told to and reports its own OpenMP thread count. */
struct worker {
  ofa_module* m;
  sem_t go, done;
  int stop;
  int omp_threads;
  int (*omp_get_max_threads)(void);
};

static void* worker_main(void* arg) {
  struct worker* w = arg;
  for (;;) {
    sem_wait(&w->go);
    if (w->stop) return NULL;
    check_multi(w->m, "multi forward on a worker thread");
    w->omp_threads = w->omp_get_max_threads();
    sem_post(&w->done);
  }
}

/* The intra-op count is process-wide: set here, it must govern a forward on a thread that already ran one
 * (OpenMP keeps a count per thread, fixed by the thread's first parallel work). */
static void check_intra_threads(ofa_module* m) {
  expect_error(ofa_set_num_threads(0), "at least 1", "zero intra-op threads");
  char* err = ofa_set_num_threads(1);
  CHECK(err == NULL && ofa_get_num_threads() == 1 && ofa_requested_num_threads() == 1,
        "set 1 intra-op thread: %s, now %d, requested %d", err ? err : "", ofa_get_num_threads(), ofa_requested_num_threads());
  ofa_free(err);
  struct worker w = {.m = m};
  *(void**)&w.omp_get_max_threads = dlsym(RTLD_DEFAULT, "omp_get_max_threads");
  if (w.omp_get_max_threads == NULL) {
    printf("skip intra-op threads on another thread: libtorch does not use OpenMP here\n");
    return;
  }
  sem_init(&w.go, 0, 0);
  sem_init(&w.done, 0, 0);
  pthread_t th;
  pthread_create(&th, NULL, worker_main, &w);
  sem_post(&w.go);
  sem_wait(&w.done);
  CHECK(w.omp_threads == 1, "worker thread runs forwards with %d OpenMP threads, want 1", w.omp_threads);
  err = ofa_set_num_threads(2);
  CHECK(err == NULL && ofa_get_num_threads() == 2, "set 2 intra-op threads: %s", err ? err : "");
  ofa_free(err);
  sem_post(&w.go);
  sem_wait(&w.done);
  CHECK(w.omp_threads == 2, "after setting 2 intra-op threads, the worker's forward ran with %d", w.omp_threads);
  printf("ok   intra-op threads follow the process-wide setting on a thread that ran forwards before\n");
  w.stop = 1;
  sem_post(&w.go);
  pthread_join(th, NULL);
  sem_destroy(&w.go);
  sem_destroy(&w.done);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s <fixtures dir>\n", argv[0]);
    return 2;
  }
  dir = argv[1];
  ofa_module* m = NULL;
  check_interop_threads();

  expect_error(ofa_load(path_of("no-such-model.pt"), "cpu", OFA_FLOAT32, &m), "no-such-model.pt", "missing file");
  expect_error(ofa_load(path_of("index.json"), "cpu", OFA_FLOAT32, &m), "not a TorchScript file", "not TorchScript");
  expect_error(ofa_load(path_of("multi.pt"), "tpu:3", OFA_FLOAT32, &m), "device", "bad device");

  char* err = ofa_load(path_of("multi.pt"), "cpu", OFA_FLOAT32, &m);
  CHECK(err == NULL && m != NULL, "load multi.pt: %s", err ? err : "");
  if (err != NULL) return 1;
  printf("ok   schema: %s\n", ofa_module_schema(m));
  check_multi(m, "multi forward");

  int64_t shape[2] = {2, 4};
  float x[8] = {0};
  ofa_tensor_in one[1] = {{OFA_FLOAT32, 2, shape, x, sizeof x}};
  expect_error(ofa_forward(m, one, 1).error, "wrong number of inputs", "one input of two");
  int64_t ishape[2] = {2, 3};
  float fids[6] = {0};
  ofa_tensor_in wrong_dtype[2] = {{OFA_FLOAT32, 2, shape, x, sizeof x}, {OFA_FLOAT32, 2, ishape, fids, sizeof fids}};
  expect_error(ofa_forward(m, wrong_dtype, 2).error, "forward raised", "float ids");
  ofa_tensor_in short_data[2] = {{OFA_FLOAT32, 2, shape, x, 4}, {OFA_INT64, 2, ishape, fids, 48}};
  expect_error(ofa_forward(m, short_data, 2).error, "needs 32 bytes, got 4", "short buffer");
  check_multi(m, "multi forward after errors");
  check_multi_into(m);
  check_multi(m, "multi forward after forward_into errors");
  check_staging(m);
  check_intra_threads(m);
  ofa_unload(m);

  err = ofa_load(path_of("raises.pt"), "cpu", OFA_FLOAT32, &m);
  CHECK(err == NULL, "load raises.pt: %s", err ? err : "");
  if (err == NULL) {
    float neg[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    ofa_tensor_in in[1] = {{OFA_FLOAT32, 2, shape, neg, sizeof neg}};
    expect_error(ofa_forward(m, in, 1).error, "negative input", "module raises");
    ofa_tensor_in pos[1] = {{OFA_FLOAT32, 2, shape, x, sizeof x}};
    ofa_forward_ret ret = ofa_forward(m, pos, 1);
    CHECK(ret.error == NULL && ret.result != NULL, "raises.pt on good input: %s", ret.error ? ret.error : "");
    ofa_result_free(ret.result);
    ofa_free(ret.error);
    ofa_unload(m);
  }

  printf("cuda available: %d, devices: %d\n", ofa_cuda_available(), ofa_device_count());
  uint64_t fr, tot;
  err = ofa_memory_info(0, &fr, &tot);
  if (ofa_cuda_available()) {
    CHECK(err == NULL && tot > 0, "memory info: %s", err ? err : "");
  } else {
    expect_error(err, "CUDA is not available", "memory info without CUDA");
    err = NULL;
  }
  if (err) ofa_free(err);

  if (failures) {
    fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  printf("PASS\n");
  return 0;
}
