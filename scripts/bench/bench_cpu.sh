#!/usr/bin/env bash
# bench_cpu.sh: the CPU performance figures of docs/PERFORMANCE.md, on this machine, in a few minutes.
#
#   scripts/bench/bench_cpu.sh [all|bare|batching|python|openloop] [OUT_DIR]
#
# Each step is one command and writes CSV/JSON (and a PNG) to OUT_DIR (default out/bench-cpu):
#   bare      the TorchScript forward loop at batch 1 and 16, no server          -> bare.json
#   batching  ofaserve on ofa_entailment_raw with dynamic batching, then a copy of the repository whose
#             config.pbtxt says max_batch_size: 1; same closed-loop sweep        -> dynamic.*, mbs1.*
#   python    scripts/bench/python_baseline_server.py vs ofaserve on ofa_entailment (images + hypotheses,
#             KServe v2 JSON), same sweep                                        -> python.*, ofaserve_ofa.*
#             (skipped with a note while ofaserve cannot load the `ofa` model kind)
#   openloop  ofaserve dynamic at 70% of its measured saturation, Poisson arrivals -> openloop70.*
#   all       every step above, then the plot and summary.txt (ratios)         -> latency_vs_throughput.png
# Needs bin/ofaserve and bin/ofabench (`make build`) and /usr/bin/python3 with torch. Servers listen on
# 127.0.0.1 only. Env: CONFIG (tiny), IMAGE_SIZE (64), INTERVAL_MS (4000), TRIALS (3), STAB (25),
# CONC (1:64:4x: up to 4x max_batch_size, past perf_analyzer's 2 x max_batch_size x instances rule, so batches fill),
# BARE_SECS (6s), THREADS (2, both cores of the dev VM; 0 = libtorch's default intra-op thread count; N sets it for the
# bare loop and ofaserve alike, so both use the box the same way).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEP="${1:-all}"
OUT="${2:-out/bench-cpu}"
PY="${OFASERVE_PYTHON:-/usr/bin/python3}"
CONFIG="${CONFIG:-tiny}"
IMAGE_SIZE="${IMAGE_SIZE:-64}"
INTERVAL_MS="${INTERVAL_MS:-4000}"
TRIALS="${TRIALS:-3}"
STAB="${STAB:-25}"
CONC="${CONC:-1:64:4x}"
BARE_SECS="${BARE_SECS:-6s}"
THREADS="${THREADS:-2}"
BASE_PORT=$((20000 + ($$ % 2000) * 10))
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
REPO="$OUT/repo"
LOG="$OUT/logs"
mkdir -p "$LOG"
for b in bin/ofaserve bin/ofabench; do
  [ -x "$b" ] || { echo "bench_cpu: $b missing: run 'make build' first" >&2; exit 1; }
done

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

say() { echo "[bench_cpu ${SECONDS}s] $*" >&2; }

# --- inputs: the model repository, images and hypotheses ------------------------------------------
prepare() {
  if [ ! -f "$REPO/ofa_entailment_raw/1/model.pt" ]; then
    say "exporting $CONFIG OFA at ${IMAGE_SIZE}px (random weights)"
    timeout 300 "$PY" scripts/export_ofa.py --random-init --config "$CONFIG" --image-size "$IMAGE_SIZE" \
      --max-batch-size 16 --out "$REPO" --quiet
  fi
  if [ ! -d "$OUT/images" ]; then
    mkdir -p "$OUT/images"
    "$PY" - "$OUT/images" <<'PYEOF'
import sys, numpy as np
from PIL import Image
rng = np.random.default_rng(0)
for i in range(4):  # 640x480 photos-like JPEGs: smooth gradients plus noise
    y, x = np.mgrid[0:480, 0:640]
    base = np.stack([(x * (i + 1)) % 256, (y * 2 + 40 * i) % 256, ((x + y) // 3) % 256], -1)
    img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(f"{sys.argv[1]}/photo{i}.jpg", quality=90)
PYEOF
    printf '%s\n' "there are two birds." "a man is riding a bicycle down the street." \
      $'two dogs are playing in the snow.\tthe dogs are outside.' "a woman holds an umbrella in the rain." \
      > "$OUT/hypotheses.txt"
  fi
}

# start_ofaserve REPO NAME PORT: starts ofaserve on 127.0.0.1:PORT (gRPC PORT+1, metrics PORT+2).
start_ofaserve() {
  bin/ofaserve --model-repository "$1" --exit-on-error=false --torch-intra-op-threads "$THREADS" --http-address 127.0.0.1 --http-port "$3" \
    --grpc-address 127.0.0.1 --grpc-port $(($3 + 1)) --metrics-address 127.0.0.1 --metrics-port $(($3 + 2)) \
    >"$LOG/$2.log" 2>&1 &
  PIDS+=($!)
  wait_ready "$3" ofa_entailment_raw "$2"
}
wait_ready() { # PORT MODEL NAME
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$1/v2/models/$2/ready" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "bench_cpu: $3 did not get $2 ready on port $1 (see $LOG/$3.log)" >&2
  return 1
}
stop_last() { local p="${PIDS[-1]}"; kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; unset 'PIDS[-1]'; }

bench() { # LABEL ofabench-args...
  local label="$1"; shift
  say "ofabench: $label"
  timeout 300 bin/ofabench --label "$label" --measurement-interval "$INTERVAL_MS" --max-trials "$TRIALS" \
    --stability-percentage "$STAB" --warmup-requests 8 --max-duration 4m -f "$OUT/$label.csv" --json "$OUT/$label.json" "$@" \
    2> >(tee "$LOG/$label.ofabench.log" >&2)
}

seq_len() { # the padded token length the bare loop used at batch 16 (so raw requests cost the same)
  "$PY" -c 'import json,sys; r=[x for x in json.load(open(sys.argv[1]))["results"] if x["batch_size"]==16]; print(r[0]["seq_len"] if r else 24)' "$OUT/bare.json" 2>/dev/null || echo 24
}

step_bare() {
  prepare
  say "bare model loop"
  timeout 240 bin/ofabench bare --model "$REPO/ofa_entailment_raw/1/model.pt" --meta "$REPO/ofa_entailment/1/ofa_meta.json" \
    --batch 1,16 --intra-op-threads "$THREADS" --duration "$BARE_SECS" --warmup 2 --hypotheses "$OUT/hypotheses.txt" --json "$OUT/bare.json" | tee "$LOG/bare.txt"
}

step_batching() {
  prepare
  [ -f "$OUT/bare.json" ] || step_bare
  local L; L="$(seq_len)"
  rm -rf "$OUT/repo_mbs1" && cp -r "$REPO" "$OUT/repo_mbs1"
  sed -i 's/^max_batch_size: .*/max_batch_size: 1/' "$OUT/repo_mbs1/ofa_entailment_raw/config.pbtxt" "$OUT/repo_mbs1/ofa_entailment/config.pbtxt"
  start_ofaserve "$REPO" ofaserve_dynamic "$BASE_PORT"
  bench dynamic -m ofa_entailment_raw -u "127.0.0.1:$BASE_PORT" --input-tensor-format binary \
    --shape "INPUT_IDS:$L" --concurrency-range "$CONC"
  stop_last
  start_ofaserve "$OUT/repo_mbs1" ofaserve_mbs1 $((BASE_PORT + 3))
  bench mbs1 -m ofa_entailment_raw -u "127.0.0.1:$((BASE_PORT + 3))" --input-tensor-format binary \
    --shape "INPUT_IDS:$L" --concurrency-range "$CONC"
  stop_last
}

step_python() {
  prepare
  start_ofaserve "$REPO" ofaserve_ofa "$BASE_PORT"
  if curl -sf "http://127.0.0.1:$BASE_PORT/v2/models/ofa_entailment/ready" >/dev/null 2>&1; then
    bench ofaserve_ofa -m ofa_entailment -u "127.0.0.1:$BASE_PORT" --images "$OUT/images" \
      --hypotheses "$OUT/hypotheses.txt" --concurrency-range "$CONC"
  else
    say "ofaserve did not load ofa_entailment (see $LOG/ofaserve_ofa.log): no ofaserve side for this comparison"
    echo "ofaserve could not load ofa_entailment: $(grep -m1 -o "failed to load 'ofa_entailment'.*" "$LOG/ofaserve_ofa.log" || true)" > "$OUT/ofaserve_ofa.skipped"
  fi
  stop_last
  local pport=$((BASE_PORT + 6))
  "$PY" scripts/bench/python_baseline_server.py --model-repository "$REPO" --port "$pport" >"$LOG/python.log" 2>&1 &
  PIDS+=($!)
  wait_ready "$pport" ofa_entailment python
  bench python -m ofa_entailment -u "127.0.0.1:$pport" --images "$OUT/images" \
    --hypotheses "$OUT/hypotheses.txt" --concurrency-range "$CONC" --no-server-stats
  stop_last
}

step_openloop() {
  prepare
  [ -f "$OUT/bare.json" ] || step_bare
  [ -f "$OUT/dynamic.json" ] || step_batching
  local L rate; L="$(seq_len)"
  rate="$("$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(round(0.7*max(l["result"]["throughput_infer_per_sec"] for l in r["levels"]),2))' "$OUT/dynamic.json")"
  start_ofaserve "$REPO" ofaserve_openloop "$BASE_PORT"
  bench openloop70 -m ofa_entailment_raw -u "127.0.0.1:$BASE_PORT" --input-tensor-format binary \
    --shape "INPUT_IDS:$L" --request-rate-range "$rate" --request-distribution poisson
  stop_last
}

summary() {
  local files=()
  for f in dynamic mbs1 ofaserve_ofa python; do [ -f "$OUT/$f.json" ] && files+=("$OUT/$f.json"); done
  [ ${#files[@]} -gt 0 ] && bin/ofabench plot -o "$OUT/latency_vs_throughput.png" -title "ofaserve CPU ($CONFIG OFA, ${IMAGE_SIZE}px)" "${files[@]}"
  "$PY" scripts/bench/bench_summary.py "$OUT" | tee "$OUT/summary.txt"
}

case "$STEP" in
  bare) step_bare ;;
  batching) step_batching ;;
  python) step_python ;;
  openloop) step_openloop ;;
  summary) summary ;;
  all) step_bare; step_batching; step_openloop; step_python; summary ;;
  *) echo "usage: $0 [all|bare|batching|python|openloop|summary] [OUT_DIR]" >&2; exit 2 ;;
esac
say "done: $OUT"
