#!/usr/bin/env bash
# gpu_bench.sh: ofaserve's GPU figures on a machine with a CUDA PyTorch wheel, CMake and a C++ compiler,
# but no Go and no network. bin/ofaserve and bin/ofabench are built elsewhere (`make build`) and carried.
#
#   1. builds the shim against the wheel's libtorch into build-gpu/ (skipped when build-gpu/libofatorch.so
#      exists, e.g. after scripts/gpu/gpu_check.sh, which builds it the same way);
#   2. exports OFA `large` with seeded random weights at 480 px, fp32 and bf16, on cuda;
#   3. the bare model: `ofabench bare` at batch 1 and 16 on each export (parameters as saved), on cuda:0;
#   4. ofaserve on cuda:0 (instance_group KIND_GPU) per precision: a closed-loop sweep on
#      ofa_entailment_raw (binary tensors), and on ofa_entailment (images + hypotheses) when it loads;
#   5. bench_summary.py tables and a PNG of p99 latency vs throughput.
# Everything is written to OUT (default out/bench-gpu). Each step runs under `timeout` with what is left
# of BUDGET seconds (default 450, i.e. under 8 minutes in all); a step that runs out is reported, and
# later steps still run with what remains.
#
# Usage: scripts/gpu/gpu_bench.sh [--dry-run] [OUT]
#   --dry-run  print the plan (commands and budgets) without running anything; works anywhere.
# Env: OFASERVE_PYTHON (python3 with the CUDA wheel), DEVICE (cuda:0), CONFIG (large), IMAGE_SIZE (480),
#      PRECISIONS ("fp32 bf16"), CONC (1:64:4x), INTERVAL_MS (2000), BUDGET (450),
#      GPU_BENCH_ALLOW_CPU=1 rehearses on a CPU machine: DEVICE=cpu, reuses build/ for the shim
#      (with CONFIG=tiny IMAGE_SIZE=64 it finishes in a few minutes on 2 cores).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT="$(pwd)"
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
OUT="${1:-out/bench-gpu}"
PY="${OFASERVE_PYTHON:-python3}"
ALLOW_CPU="${GPU_BENCH_ALLOW_CPU:-0}"
DEVICE="${DEVICE:-cuda:0}"
[ "$ALLOW_CPU" = 1 ] && DEVICE=cpu
CONFIG="${CONFIG:-large}"
IMAGE_SIZE="${IMAGE_SIZE:-480}"
PRECISIONS="${PRECISIONS:-fp32 bf16}"
CONC="${CONC:-1:64:4x}"
INTERVAL_MS="${INTERVAL_MS:-2000}"
BUDGET="${BUDGET:-450}"
BUILD="$ROOT/build-gpu"
[ "$ALLOW_CPU" = 1 ] && BUILD="$ROOT/build"
PORT="${PORT:-18700}"
mkdir -p "$OUT/logs"
OUT="$(cd "$OUT" && pwd)"
LOG="$OUT/logs"

summary=()
note() { summary+=("$(printf '%-34s %s' "$1" "$2")"); echo "[gpu_bench ${SECONDS}s] $1: $2" >&2; }
left() { local l=$((BUDGET - SECONDS)); [ "$l" -lt 5 ] && l=5; echo "$l"; }
# cap N: the smaller of N seconds and what is left of the budget.
cap() { local l; l="$(left)"; [ "$1" -lt "$l" ] && echo "$1" || echo "$l"; }
run() { # STEP SECONDS cmd...: bounded, logged; in --dry-run only printed
  local step="$1" secs="$2"; shift 2
  if [ "$DRY" = 1 ]; then echo "[dry-run] ($secs s) $step: $*"; return 0; fi
  timeout "$(cap "$secs")" "$@" >"$LOG/$step.log" 2>&1
}
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
finish() {
  echo
  echo "=== gpu_bench summary (${SECONDS}s, device $DEVICE) ==="
  printf '%s\n' "${summary[@]}"
  [ -f "$OUT/summary.md" ] && cat "$OUT/summary.md"
  exit 0
}

for b in bin/ofaserve bin/ofabench; do
  [ -x "$b" ] || [ "$DRY" = 1 ] || { note "binaries" "FAIL: $b missing (build it with 'make build' on a machine with Go)"; finish; }
done

# --- 1. the wheel and the shim --------------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  TORCH_LIB="<torch/lib>"; PREFIX="<torch.utils.cmake_prefix_path>"
else
  if ! info="$("$PY" -c 'import os, torch
print(torch.utils.cmake_prefix_path)
print(os.path.join(os.path.dirname(torch.__file__), "lib"))
print(torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")' 2>&1)"; then
    note "torch" "FAIL: $PY cannot import torch: $info"; finish
  fi
  PREFIX="$(sed -n 1p <<<"$info")"; TORCH_LIB="$(sed -n 2p <<<"$info")"
  CARD="$(sed -n 3p <<<"$info")"
  note "torch" "$CARD"
  echo "$CARD" >"$OUT/card.txt"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$OUT/card.txt" 2>/dev/null || true
fi
if [ -f "$BUILD/libofatorch.so" ] && [ "$DRY" = 0 ]; then
  note "shim" "reusing $BUILD/libofatorch.so"
else
  # Same configure as scripts/gpu/gpu_check.sh: find_package(Torch), or the manual import when the wheel's
  # TorchConfig.cmake wants a CUDA toolkit that is not installed.
  if run cmake-configure 120 cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX" ||
     { rm -rf "$BUILD/CMakeCache.txt" "$BUILD/CMakeFiles"
       run cmake-configure-manual 120 cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
         -DCMAKE_PREFIX_PATH="$PREFIX" -DOFA_TORCH_MANUAL=ON; }; then
    if run cmake-build 200 cmake --build "$BUILD" -j"$(nproc 2>/dev/null || echo 4)" --target ofatorch; then
      note "shim" "built in $BUILD"
    else
      note "shim" "FAIL: see $LOG/cmake-build.log"; finish
    fi
  else
    note "shim" "FAIL: configure, see $LOG/cmake-configure*.log"; finish
  fi
fi
export LD_LIBRARY_PATH="$BUILD:$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# --- inputs -----------------------------------------------------------------------------------------
run make-inputs 30 "$PY" - "$OUT" <<'PYEOF'
import os, sys
import numpy as np
from PIL import Image
out = sys.argv[1]
os.makedirs(f"{out}/images", exist_ok=True)
rng = np.random.default_rng(0)
for i in range(8):
    y, x = np.mgrid[0:480, 0:640]
    base = np.stack([(x * (i + 1)) % 256, (y * 2 + 40 * i) % 256, ((x + y) // 3) % 256], -1)
    Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)).save(f"{out}/images/photo{i}.jpg", quality=90)
with open(f"{out}/hypotheses.txt", "w") as f:
    f.write("there are two birds.\na man is riding a bicycle down the street.\n"
            "two dogs are playing in the snow.\tthe dogs are outside.\na woman holds an umbrella in the rain.\n")
PYEOF

# --- 2. export ----------------------------------------------------------------------------------------
dev_kind=cuda; [ "$DEVICE" = cpu ] && dev_kind=cpu
for p in $PRECISIONS; do
  if run "export-$p" 150 "$PY" scripts/export_ofa.py --random-init --config "$CONFIG" --image-size "$IMAGE_SIZE" \
       --dtype "$p" --device "$dev_kind" --max-batch-size 64 --out "$OUT/repo_$p" --quiet; then
    note "export $CONFIG $p" "ok"
  else
    note "export $CONFIG $p" "FAIL or out of time (see $LOG/export-$p.log)"
    continue
  fi
  [ "$DRY" = 1 ] && continue
  for cfg in "$OUT/repo_$p"/*/config.pbtxt; do
    if [ "$DEVICE" != cpu ]; then
      sed -i "s/kind: KIND_CPU }/kind: KIND_GPU gpus: [ ${DEVICE#cuda:} ] }/" "$cfg"
    fi
    # No "precision" parameter: the exporter's bf16/fp16 module already holds its weights in that dtype
    # and casts its float32 inputs itself, so a load-time conversion would add nothing.
  done
done

# --- 3. the bare model ---------------------------------------------------------------------------------
for p in $PRECISIONS; do
  [ -f "$OUT/repo_$p/ofa_entailment_raw/1/model.pt" ] || [ "$DRY" = 1 ] || continue
  if run "bare-$p" 60 bin/ofabench bare --model "$OUT/repo_$p/ofa_entailment_raw/1/model.pt" \
       --meta "$OUT/repo_$p/ofa_entailment/1/ofa_meta.json" --device "$DEVICE" --precision fp32 --batch 1,16 \
       --duration 5s --warmup 5 --hypotheses "$OUT/hypotheses.txt" --label "bare $CONFIG $p" --json "$OUT/${p}_bare.json"; then
    note "bare $p" "$(grep -h '^Batch' "$LOG/bare-$p.log" 2>/dev/null | cut -d, -f1,3 | paste -sd';' -)"
  else
    note "bare $p" "FAIL (see $LOG/bare-$p.log)"
  fi
done

# --- 4. ofaserve on the device -----------------------------------------------------------------------
seq_len() {
  "$PY" -c 'import json,sys; r=[x for x in json.load(open(sys.argv[1]))["results"] if x["batch_size"]==16]; print(r[0]["seq_len"] if r else 24)' "$1" 2>/dev/null || echo 24
}
for p in $PRECISIONS; do
  [ -f "$OUT/repo_$p/ofa_entailment_raw/config.pbtxt" ] || [ "$DRY" = 1 ] || continue
  if [ "$DRY" = 1 ]; then
    echo "[dry-run] ofaserve --model-repository $OUT/repo_$p on $DEVICE; ofabench sweeps $CONC"
    continue
  fi
  bin/ofaserve --model-repository "$OUT/repo_$p" --exit-on-error=false --http-address 127.0.0.1 --http-port "$PORT" \
    --grpc-address 127.0.0.1 --grpc-port $((PORT + 1)) --metrics-address 127.0.0.1 --metrics-port $((PORT + 2)) \
    >"$LOG/ofaserve-$p.log" 2>&1 &
  PIDS+=($!)
  ready=0
  for _ in $(seq 1 "$(cap 120)"); do
    curl -sf "http://127.0.0.1:$PORT/v2/models/ofa_entailment_raw/ready" >/dev/null 2>&1 && { ready=1; break; }
    sleep 1
  done
  if [ "$ready" = 0 ]; then
    note "ofaserve $p" "FAIL: not ready (see $LOG/ofaserve-$p.log)"
  else
    L="$(seq_len "$OUT/${p}_bare.json")"
    common=(--warmup-requests 10 --measurement-interval "$INTERVAL_MS" --max-trials 3 --stability-percentage 20 --max-duration "$(cap 90)s")
    if run "ofabench-raw-$p" 100 bin/ofabench -m ofa_entailment_raw -u "127.0.0.1:$PORT" --input-tensor-format binary \
         --shape "INPUT_IDS:$L" --concurrency-range "$CONC" --label "ofaserve raw $p" \
         -f "$OUT/${p}_dynamic.csv" --json "$OUT/${p}_dynamic.json" "${common[@]}"; then
      note "ofaserve raw $p" "$(grep -h '^Concurrency' "$LOG/ofabench-raw-$p.log" | tail -1)"
    else
      note "ofaserve raw $p" "FAIL or out of time (see $LOG/ofabench-raw-$p.log)"
    fi
    if curl -sf "http://127.0.0.1:$PORT/v2/models/ofa_entailment/ready" >/dev/null 2>&1; then
      if run "ofabench-ofa-$p" 100 bin/ofabench -m ofa_entailment -u "127.0.0.1:$PORT" --images "$OUT/images" \
           --hypotheses "$OUT/hypotheses.txt" --input-tensor-format binary --concurrency-range "$CONC" \
           --label "ofaserve ofa_entailment $p" -f "$OUT/${p}_ofaserve_ofa.csv" --json "$OUT/${p}_ofaserve_ofa.json" "${common[@]}"; then
        note "ofaserve ofa_entailment $p" "$(grep -h '^Concurrency' "$LOG/ofabench-ofa-$p.log" | tail -1)"
      else
        note "ofaserve ofa_entailment $p" "FAIL or out of time (see $LOG/ofabench-ofa-$p.log)"
      fi
    else
      note "ofaserve ofa_entailment $p" "not loaded (see $LOG/ofaserve-$p.log)"
    fi
  fi
  kill "${PIDS[-1]}" 2>/dev/null; wait "${PIDS[-1]}" 2>/dev/null; unset 'PIDS[-1]'
done

# --- 5. report -----------------------------------------------------------------------------------------
if [ "$DRY" = 0 ]; then
  files=()
  for f in "$OUT"/*_dynamic.json "$OUT"/*_ofaserve_ofa.json; do [ -f "$f" ] && files+=("$f"); done
  if [ ${#files[@]} -gt 0 ]; then
    bin/ofabench plot -o "$OUT/latency_vs_throughput.png" -title "ofaserve on $DEVICE ($CONFIG OFA, ${IMAGE_SIZE}px)" "${files[@]}" 2>/dev/null &&
      note "plot" "$OUT/latency_vs_throughput.png"
  fi
  : >"$OUT/summary.md"
  for p in $PRECISIONS; do
    { echo "### $p"; "$PY" "$ROOT/scripts/bench/bench_summary.py" "$OUT" "${p}_"; echo; } >>"$OUT/summary.md" 2>&1
  done
fi
finish
