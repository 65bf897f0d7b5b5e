#!/usr/bin/env bash
# gpu_session.sh: the one command a session with a GPU runs (issue 13): proves the CUDA path and measures
# ofaserve against the bare model and the Python peers on the same GPU, in about 9 minutes, writing its
# figures to OUT as it goes (at most 8 files).
#
# On the build machine first (Go is there, not on the GPU box):
#   make build gpu-tests          # bin/gpu-bundle.tar.xz: ofaserve, ofabench, test binaries, parity photos
# Then on the GPU box, from the repository root, carrying bin/gpu-bundle.tar.xz:
#   scripts/gpu/gpu_session.sh "$OUT"
#
# Stages, each under `timeout` with the smaller of its cap and what is left of BUDGET (less RESERVE), in
# order; a stage that fails or runs out is reported and the next still runs:
#   unpack   bin/gpu-bundle.tar.xz -> bin/ (when the bundle is newer than bin/ofaserve)
#   checks   scripts/gpu/gpu_check.sh: shim built against this machine's PyTorch (libtorch_cuda linked,
#            CUDA graphs compiled in), its C ABI test, the Go test binaries on cuda:0 (parity: fp32 <= 1e-5,
#            bf16 within the bound of backend/ofa TestPrecision), the tutorial's curl on KIND_GPU
#   inputs   real photos (the parity sources) as 640x480 JPEGs, and hypotheses (some with a premise)
#   export   OFA-large at 480 px, seeded random weights, fp32, on cuda (the time is a figure)
#   bare     ofabench bare, batch 1/8/16: fp32 on the float32 path (the bytes per sample before uint8),
#            staged (uint8, eager) and graph; bf16 staged and graph (one fp32 export, converted at load)
#   ofaserve_fp32, ofaserve_bf16
#            bin/ofaserve (KIND_GPU, cuda_graphs on, buckets 1..16 x 32,64) over HTTP/JSON with the JPEGs
#            and hypotheses, closed loop at concurrency CONC; GPU utilisation sampled from NVML
#            (nvidia-smi) during the sweep; load and warm-up times from /metrics
#   python_batching, python_threads
#            scripts/bench/python_batching_server.py and python_baseline_server.py, same module, same
#            GPU, same requests
#   summary  scripts/gpu/session_summary.py: OUT/summary.md and summary.json (samples/s at saturation,
#            p50/p99 at c=1 and c=16, serving efficiency, ofaserve / Python at equal p99, H2D bytes per
#            sample before/after, graph vs eager at batch 1, export time), bare.json, ofaserve.json,
#            python.json, gpu_util.csv, checks.log; rewritten after every stage. logs.tar.gz at the end.
#
# Usage: scripts/gpu/gpu_session.sh [--cpu] [OUT]       (OUT: default $OUT, else out/gpu-session)
#   --cpu  the rehearsal on a machine without a GPU: Debian's libtorch through a fake wheel layout, the micro
#          OFA at 64 px, short sweeps; every stage runs, the CUDA-only checks become notes.
# Env: OFASERVE_PYTHON (default python3, the interpreter with torch; /usr/bin/python3 with --cpu), BUDGET (seconds, default 540; 1500
#      with --cpu), ONLY (comma-separated stages to run, for a rerun: e.g. ONLY=ofaserve_bf16,python_batching;
#      unpack, inputs and summary always run, and export when its model is missing), CONC, PORT.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT="$(pwd)"
CPU=0
if [ "${1:-}" = "--cpu" ]; then CPU=1; shift; fi
OUTDIR="${1:-${OUT:-out/gpu-session}}"
mkdir -p "$OUTDIR" && OUTDIR="$(cd "$OUTDIR" && pwd)"
PY="${OFASERVE_PYTHON:-python3}"
[ "$CPU" = 1 ] && [ -z "${OFASERVE_PYTHON:-}" ] && [ -x /usr/bin/python3 ] && PY=/usr/bin/python3
WORK="$ROOT/build-gpu/session"
LOGS="$WORK/logs"
PORT="${PORT:-18600}"
ONLY="${ONLY:-}"
RESERVE=15
if [ "$CPU" = 1 ]; then
  BUDGET="${BUDGET:-1500}" DEVICE=cpu DEV_KIND=cpu CONFIG=micro IMAGE_SIZE=64
  CONC="${CONC:-1:16:4x}" PY_CONC="${CONC}" THREADS_CONC="1:4:4x" INTERVAL_MS=500 BARE_SECS=1s SWEEP_SECS=60
  CHECK_CAP=700 EXPORT_CAP=120 BARE_CAP=120 SWEEP_CAP=150 PYTHON_CAP=120 READY_SECS=120
else
  BUDGET="${BUDGET:-540}" DEVICE=cuda:0 DEV_KIND=cuda CONFIG=large IMAGE_SIZE=480
  CONC="${CONC:-1:64:2x}" PY_CONC="${CONC}" THREADS_CONC="1:16:4x" INTERVAL_MS=1000 BARE_SECS=2s SWEEP_SECS=75
  CHECK_CAP=250 EXPORT_CAP=150 BARE_CAP=100 SWEEP_CAP=110 PYTHON_CAP=80 READY_SECS=90
fi
BATCHES=1,8,16
BUCKETS_B=1,2,4,8,16
BUCKETS_L=32,64
REPO="$WORK/repo"
rm -rf "$LOGS" && mkdir -p "$LOGS"
: >"$WORK/stages.tsv"
: >"$WORK/facts.tsv"
# The stages run as functions in a child bash (timeout needs a command): they see these.
export ROOT PY WORK LOGS REPO DEVICE DEV_KIND CPU CONFIG IMAGE_SIZE CONC INTERVAL_MS BARE_SECS SWEEP_SECS READY_SECS \
  CHECK_CAP BATCHES BUCKETS_B BUCKETS_L PORT

fact() { printf '%s\t%s\n' "$1" "$2" >>"$WORK/facts.tsv"; }
say() { echo "[gpu_session ${SECONDS}s] $*" >&2; }
summarize() {
  "$PY" scripts/gpu/session_summary.py "$WORK" "$OUTDIR" >"$LOGS/summary.log" 2>&1 ||
    say "summary failed: $(tail -1 "$LOGS/summary.log")"
}
# wanted STAGE: whether ONLY (a rerun's list) includes it; unpack and inputs always run, export when forced.
wanted() { [ -z "$ONLY" ] || [[ ",$ONLY,unpack,inputs,${FORCE:-}," == *",$1,"* ]]; }
# stage NAME CAP cmd...: runs cmd with the smaller of CAP and what is left, logs it, records the outcome.
stage() {
  local name="$1" cap="$2" t rc t0
  shift 2
  if ! wanted "$name"; then return 0; fi
  t=$((BUDGET - RESERVE - SECONDS))
  [ "$cap" -lt "$t" ] && t="$cap"
  if [ "$t" -lt 10 ]; then
    printf '%s\tSKIPPED\t0\tout of time (%ss of %ss used)\n' "$name" "$SECONDS" "$BUDGET" >>"$WORK/stages.tsv"
    say "$name: skipped, out of time"
    return 124
  fi
  say "$name: start (limit ${t}s)"
  t0=$SECONDS
  timeout -k 5 "$t" bash -c '"$@"' stage "$@" >"$LOGS/$name.log" 2>&1
  rc=$?
  local status=ok note=""
  case "$rc" in
    0) ;;
    124 | 137) status=TIMEOUT note="limit ${t}s" ;;
    *) status=FAIL note="exit $rc: $(grep -v '^\s*$' "$LOGS/$name.log" | tail -1 | cut -c1-200)" ;;
  esac
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - t0))" "$note" >>"$WORK/stages.tsv"
  say "$name: $status in $((SECONDS - t0))s $note"
  summarize
  return "$rc"
}
finish() {
  summarize
  tar -C "$WORK" -czf "$OUTDIR/logs.tar.gz" logs stages.tsv facts.tsv 2>/dev/null
  echo
  cat "$OUTDIR/summary.md" 2>/dev/null
  say "done: $(ls "$OUTDIR" | paste -sd' ' -) in $OUTDIR"
}
trap finish EXIT

# --- unpack -------------------------------------------------------------------------------------------
unpack() {
  local b=bin/gpu-bundle.tar.xz
  [ -f "$b" ] || { [ -x bin/ofaserve ] && echo "no bundle; using bin/ as it is" && return 0; echo "no $b and no bin/ofaserve: run 'make build gpu-tests' where Go is and carry $b" >&2; return 1; }
  if [ bin/ofaserve -nt "$b" ] && [ -f bin/gpu-tests/manifest.tsv ]; then echo "bin/ is newer than $b: kept"; return 0; fi
  tar -xJf "$b" 2>/dev/null || "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(".")' "$b" || return 1
  touch bin/ofaserve
  ls -la bin bin/gpu-tests
}
export -f unpack
stage unpack 60 unpack || { say "nothing to run"; exit 1; }

# --- checks: shim, C ABI, Go tests on the device, the tutorial request ----------------------------------
checks() {
  local env=(BUDGET=$((CHECK_CAP - 10)) SERVE_BUDGET=60 OFASERVE_PYTHON="$PY")
  if [ "$CPU" = 1 ]; then
    # gpu_check.sh's own rehearsal recipe: a wheel layout over Debian's libtorch whose TorchConfig fails as a
    # CUDA wheel's does without nvcc, so the manual import is exercised too.
    local w="$WORK/fakewheel/torch"
    mkdir -p "$w/lib" "$w/share/cmake/Torch" && ln -sfn /usr/include "$w/include"
    for l in torch torch_cpu c10; do ln -sf "/usr/lib/x86_64-linux-gnu/lib$l.so" "$w/lib/"; done
    printf '%s\n' 'set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=1")' \
      'message(FATAL_ERROR "simulated CUDA wheel: no CUDA toolkit")' >"$w/share/cmake/Torch/TorchConfig.cmake"
    env+=(TORCH_CMAKE_PREFIX="$w/share/cmake" TORCH_LIB_DIR="$w/lib" GPU_CHECK_ALLOW_CPU=1 OFASERVE_TEST_DEVICE=cpu JOBS=2)
  fi
  env "${env[@]}" scripts/gpu/gpu_check.sh
}
export -f checks
stage checks "$CHECK_CAP" checks
cp "$LOGS/checks.log" "$WORK/gpu_check.out" 2>/dev/null
[ -f build-gpu/libofatorch.so ] || { say "no build-gpu/libofatorch.so: the benchmark stages cannot run"; exit 1; }
TORCH_LIB="$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)"
export LD_LIBRARY_PATH="$ROOT/build-gpu:${TORCH_LIB}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fact torch "$("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null)"
fact gpu "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
fact cpus "$(nproc)"
fact mode "$([ "$CPU" = 1 ] && echo "CPU rehearsal ($CONFIG at ${IMAGE_SIZE}px)" || echo "GPU $DEVICE ($CONFIG at ${IMAGE_SIZE}px)")"

# --- inputs ---------------------------------------------------------------------------------------------
inputs() {
  "$PY" - "$WORK" bin/gpu-tests/parity-sources <<'PYEOF'
import os, sys
from PIL import Image
work, src = sys.argv[1], sys.argv[2]
out = os.path.join(work, "images")
os.makedirs(out, exist_ok=True)
n = 0
for f in sorted(os.listdir(src)):
    if f.split(".")[0] not in ("grace_hopper", "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "horse", "coins"):
        continue
    img = Image.open(os.path.join(src, f)).convert("RGB").resize((640, 480), Image.BICUBIC)
    img.save(os.path.join(out, f.split(".")[0] + ".jpg"), quality=90)
    n += 1
assert n >= 6, f"only {n} photos in {src}"
with open(os.path.join(work, "hypotheses.txt"), "w") as h:
    h.write("there is a woman in the picture.\n"
            "a man is riding a bicycle down the street.\n"
            "two dogs are playing in the snow.\tthe dogs are outside.\n"
            "a cat sleeps on a red sofa.\n"
            "an astronaut poses in front of a flag.\tthe person wears a space suit.\n"
            "a cup of coffee stands on a wooden table.\n"
            "the rocket is launching into a clear sky.\n"
            "several coins lie on a dark cloth.\n")
print(f"{n} JPEGs in {out}")
PYEOF
}
export -f inputs
stage inputs 60 inputs

# --- export ---------------------------------------------------------------------------------------------
export_model() {
  rm -rf "$REPO"
  local t0 t1
  t0=$(date +%s.%N)
  "$PY" scripts/export_ofa.py --random-init --config "$CONFIG" --image-size "$IMAGE_SIZE" --seed 0 --dtype fp32 \
    --device "$DEV_KIND" --max-batch-size 16 --out "$REPO" || return 1
  t1=$(date +%s.%N)
  echo "export_secs $("$PY" -c "print(round($t1 - $t0, 1))")"
  cp "$REPO/ofa_entailment/config.pbtxt" "$WORK/config.orig.pbtxt"
  du -sh "$REPO/ofa_entailment/1/model.pt"
}
export -f export_model
[ -f "$REPO/ofa_entailment/1/model.pt" ] || FORCE=export
stage export "$EXPORT_CAP" export_model
secs=$(sed -n 's/^export_secs //p' "$LOGS/export.log" 2>/dev/null | tail -1)
[ -n "$secs" ] && fact export_secs "$secs"
[ -f "$REPO/ofa_entailment/1/model.pt" ] || { say "no exported model: nothing to measure"; exit 1; }

# --- bare -----------------------------------------------------------------------------------------------
bare_loop() {
  local common=(--model "$REPO/ofa_entailment_raw/1/model.pt" --meta "$REPO/ofa_entailment/1/ofa_meta.json"
    --device "$DEVICE" --batch "$BATCHES" --duration "$BARE_SECS" --warmup 3 --hypotheses "$WORK/hypotheses.txt")
  bin/ofabench bare "${common[@]}" --precision fp32 --path float32,staged,graph --label "bare fp32" \
    --json "$WORK/bare_fp32.json" || return 1
  bin/ofabench bare "${common[@]}" --precision bf16 --path staged,graph --label "bare bf16" --json "$WORK/bare_bf16.json"
}
export -f bare_loop
stage bare "$BARE_CAP" bare_loop

# --- servers ----------------------------------------------------------------------------------------------
# wait_ready PORT PATH SECONDS PID
wait_ready() {
  local end=$((SECONDS + $3))
  while [ "$SECONDS" -lt "$end" ] && kill -0 "$4" 2>/dev/null; do
    curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$1$2" && return 0
    sleep 0.5
  done
  return 1
}
# sweep LABEL PORT CONC [ofabench args...]: the closed-loop sweep of one server, with NVML (nvidia-smi)
# sampling the GPU's utilisation every 250 ms meanwhile, into gpu_util.csv.
sweep() {
  local label="$1" port="$2" conc="$3" np="" rc
  shift 3
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 250 \
      >"$WORK/gpu_$label.raw" 2>/dev/null &
    np=$!
  else
    echo "no nvidia-smi: no NVML samples"
  fi
  bin/ofabench -m ofa_entailment -u "127.0.0.1:$port" --images "$WORK/images" --hypotheses "$WORK/hypotheses.txt" \
    --input-tensor-format json --concurrency-range "$conc" --measurement-interval "$INTERVAL_MS" --max-trials 3 \
    --stability-percentage 25 --warmup-requests 16 --max-duration "${SWEEP_SECS}s" --label "$label" \
    --json "$WORK/$label.json" "$@"
  rc=$?
  if [ -n "$np" ]; then
    kill "$np" 2>/dev/null
    wait "$np" 2>/dev/null
    sed "s/^/$label, /" "$WORK/gpu_$label.raw" >>"$WORK/gpu_util.csv"
  fi
  return $rc
}
stop_server() { kill -TERM "$1" 2>/dev/null; for _ in $(seq 1 40); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.25; done; kill -KILL "$1" 2>/dev/null; }

ofaserve_sweep() { # PRECISION
  local prec="$1" port=$((PORT + 10)) pid m
  {
    cat "$WORK/config.orig.pbtxt"
    printf 'parameters { key: "%s" value: { string_value: "%s" } }\n' precision "$prec" cuda_graphs true \
      bucket_batch_sizes "$BUCKETS_B" bucket_text_lengths "$BUCKETS_L"
  } >"$REPO/ofa_entailment/config.pbtxt"
  bin/ofaserve --model-repository "$REPO" --model-control-mode=explicit --load-model=ofa_entailment \
    --http-address 127.0.0.1 --http-port "$port" --grpc-address 127.0.0.1 --grpc-port $((port + 1)) \
    --metrics-address 127.0.0.1 --metrics-port $((port + 2)) --exit-timeout-secs 5 >"$LOGS/ofaserve_$prec.server.log" 2>&1 &
  pid=$!
  trap 'stop_server '"$pid" EXIT
  if ! wait_ready "$port" /v2/models/ofa_entailment/ready "$READY_SECS" "$pid"; then
    echo "ofaserve ($prec) not ready in ${READY_SECS}s: $(tail -3 "$LOGS/ofaserve_$prec.server.log")"
    return 1
  fi
  m=$(curl -s "http://127.0.0.1:$((port + 2))/metrics")
  echo "load_secs $(sed -n 's/^nv_model_load_duration_secs{model="ofa_entailment",version="1"} //p' <<<"$m")"
  echo "warmup_secs $(sed -n 's/^nv_model_warmup_duration_secs{model="ofa_entailment",version="1"} //p' <<<"$m")"
  grep -E 'CUDA graph|buckets warmed|model loaded' "$LOGS/ofaserve_$prec.server.log" | cut -c1-400
  sweep "ofaserve_$prec" "$port" "$CONC"
}
python_sweep() { # batching|threads CONC
  local kind="$1" port=$((PORT + 20)) pid script
  script=scripts/bench/python_batching_server.py
  [ "$kind" = threads ] && script=scripts/bench/python_baseline_server.py
  "$PY" "$script" --model-repository "$REPO" --port "$port" --device "$DEVICE" >"$LOGS/python_$kind.server.log" 2>&1 &
  pid=$!
  trap 'stop_server '"$pid" EXIT
  if ! wait_ready "$port" /v2/models/ofa_entailment/ready "$READY_SECS" "$pid"; then
    echo "python $kind server not ready: $(tail -3 "$LOGS/python_$kind.server.log")"
    return 1
  fi
  sweep "python_$kind" "$port" "$2" --no-server-stats
}
export -f wait_ready sweep stop_server ofaserve_sweep python_sweep
stage ofaserve_fp32 "$SWEEP_CAP" ofaserve_sweep fp32

stage python_batching "$PYTHON_CAP" python_sweep batching "$PY_CONC"
stage ofaserve_bf16 "$SWEEP_CAP" ofaserve_sweep bf16
stage python_threads "$PYTHON_CAP" python_sweep threads "$THREADS_CONC"
cp "$WORK/config.orig.pbtxt" "$REPO/ofa_entailment/config.pbtxt" 2>/dev/null
exit 0
