#!/usr/bin/env bash
# bench_simulated.sh: ofaserve against the simulated accelerator (backend/simulated), Triton rules vs the
# adaptive policy, one and two instances; the figures of docs/PERFORMANCE.md "Batching on a simulated device".
#
#   scripts/bench/bench_simulated.sh [OUT_DIR]        (default out/bench-simulated)
#
# Builds (make build, make models for the tokenizer files), writes a model repository of four simulated models
# with the ofa kind's inputs, t(b) = 20 ms + 2.5 ms·b, max_batch_size 16, max_queue_delay 2 ms:
#   sim_triton_1, sim_adaptive_1 (one instance), sim_triton_2, sim_adaptive_2 (two), and as a control
#   sim_triton-raw_1, sim_adaptive-raw_1 (raw tensors: no decoding on the host; c = 16 and 64 only),
# serves them with one ofaserve on 127.0.0.1 and runs ofabench with real JPEGs (matplotlib's sample photos) and
# hypotheses: closed loop at c = 1, 4, 16, 64, then open loop Poisson at 50/70/90 % of the device's capacity
# (instances × 16 / t(16)), the two policies side by side at each load, then the one-instance 70 % pair again
# PAIRS times. scripts/bench/simulated_summary.py writes docs/perf/simulated.md and
# docs/perf/simulated.png (DOCS=0 keeps them in OUT_DIR only).
# Env: INTERVAL_MS (2000), OPEN_INTERVAL_MS (8000: an open-loop window of ~1,500 requests at 70 %, so that
# its p99 rests on ~15 of them, not on the 3 or 4 of a 2 s window), TRIALS (3), STAB (30), CONC (1:64:4x),
# LOADS (0.5 0.7 0.9), PAIRS (2: repeats of the one-instance 70 % pair, alternating which policy runs first).
# About 12 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:-out/bench-simulated}"
PY="${OFASERVE_PYTHON:-/usr/bin/python3}"
INTERVAL_MS="${INTERVAL_MS:-2000}"
OPEN_INTERVAL_MS="${OPEN_INTERVAL_MS:-8000}"
TRIALS="${TRIALS:-3}"
STAB="${STAB:-30}"
LOADS="${LOADS:-0.5 0.7 0.9}"
PAIRS="${PAIRS:-2}"
DOCS="${DOCS:-1}"
PORT=$((22000 + ($$ % 1000) * 4))
make -s build >/dev/null
[ -f models/ofa_entailment/1/ofa_meta.json ] || make -s models >/dev/null
mkdir -p "$OUT/logs" && OUT="$(cd "$OUT" && pwd)"
REPO="$OUT/repo"
rm -rf "$REPO" && mkdir -p "$REPO"
say() { echo "[bench_simulated ${SECONDS}s] $*" >&2; }
# shellcheck source=simulated_model.sh
. scripts/bench/simulated_model.sh

# --- the repository: four simulated models with the ofa kind's inputs and tokenizer -------------------
for policy in triton adaptive; do
  for n in 1 2; do
    simulated_model "$REPO" "sim_${policy}_$n" "$n" "" \
      "parameters { key: \"batching_policy\" value { string_value: \"$policy\" } }" \
      'parameters { key: "simulated_per_token_microseconds" value { string_value: "0" } }'
  done
done

# Control: the same device and batching with raw tensors (no image decoding or tokenizing on the host), one
# instance, c = 16 and 64: what the batcher does when the host is not the limit.
for policy in triton adaptive; do
  m="sim_${policy}-raw_1"
  mkdir -p "$REPO/$m/1"
  cat >"$REPO/$m/config.pbtxt" <<PBEOF
name: "$m"
platform: "simulated"
max_batch_size: 16
input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ]
output [ { name: "logits" data_type: TYPE_FP32 dims: [ 3 ] } ]
dynamic_batching { max_queue_delay_microseconds: 2000 }
instance_group [ { count: 1 kind: KIND_CPU } ]
parameters { key: "batching_policy" value { string_value: "$policy" } }
PBEOF
done

# --- inputs: real JPEGs and hypotheses -----------------------------------------------------------------
mkdir -p "$OUT/images"
"$PY" - "$OUT/images" <<'PYEOF'
import glob, sys
from PIL import Image
src = "/usr/share/matplotlib/mpl-data/sample_data"
for i, f in enumerate(sorted(glob.glob(src + "/*.jpg") + glob.glob(src + "/*.png"))):
    Image.open(f).convert("RGB").save(f"{sys.argv[1]}/photo{i}.jpg", quality=90)
PYEOF
printf '%s\n' "a woman in a uniform." "a man is riding a bicycle down the street." \
  $'a portrait of a person.\tthe person is wearing a tie.' "the picture shows a blue box." >"$OUT/hypotheses.txt"

# --- one server for all four -------------------------------------------------------------------------
bin/ofaserve --model-repository "$REPO" --http-address 127.0.0.1 --http-port "$PORT" --grpc-address 127.0.0.1 \
  --grpc-port $((PORT + 1)) --metrics-address 127.0.0.1 --metrics-port $((PORT + 2)) >"$OUT/logs/ofaserve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null && break; sleep 0.5; done

# The host's cost per request of a run: the server's CPU time (utime + stime of its process) and the client's
# (bash's time of ofabench) over the requests the model counted (its inference_count), warm-ups included,
# written to LABEL.host.json for the summary.
server_cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
inference_count() {
  curl -sf "http://127.0.0.1:$PORT/v2/models/$1/stats" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["model_stats"][0]["inference_count"])'
}
bench() { # LABEL MODEL ofabench-args...
  local label="$1" model="$2"; shift 2
  say "ofabench: $label"
  local inputs=(--images "$OUT/images" --hypotheses "$OUT/hypotheses.txt")
  [[ "$model" == *-raw_* ]] && inputs=(--input-tensor-format binary)
  local c0 n0 c1 n1 TIMEFORMAT='%U %S'
  c0=$(server_cpu_ticks); n0=$(inference_count "$model")
  { time timeout 120 bin/ofabench --label "$label" -m "$model" -u "127.0.0.1:$PORT" "${inputs[@]}" --measurement-interval "$INTERVAL_MS" --max-trials "$TRIALS" \
    --stability-percentage "$STAB" --warmup-requests 32 --max-duration 100s --json "$OUT/$label.json" "$@" \
    2>"$OUT/logs/$label.log" || say "$label: ofabench exit $? (see logs/$label.log)"; } 2>"$OUT/logs/$label.time"
  c1=$(server_cpu_ticks); n1=$(inference_count "$model")
  "$PY" - "$OUT/$label.host.json" "$(getconf CLK_TCK)" "$c0" "$c1" "$n0" "$n1" "$OUT/logs/$label.time" <<'PYEOF'
import json, sys
out, hz, c0, c1, n0, n1, timefile = sys.argv[1], *map(int, sys.argv[2:7]), sys.argv[7]
user, system = map(float, open(timefile).read().split()[-2:])
n = max(1, n1 - n0)
json.dump({"requests": n1 - n0, "server_cpu_ms_per_request": 1e3 * (c1 - c0) / hz / n,
           "client_cpu_ms_per_request": 1e3 * (user + system) / n}, open(out, "w"))
PYEOF
}
for n in 1 2; do
  for policy in triton adaptive; do
    bench "closed_${policy}_$n" "sim_${policy}_$n" --concurrency-range "${CONC:-1:64:4x}"
  done
done
for policy in triton adaptive; do
  bench "closed_${policy}-raw_1" "sim_${policy}-raw_1" --concurrency-range 16:64:4x
done
open_run() { # LABEL POLICY INSTANCES LOAD
  local rate
  rate=$("$PY" -c "print(round($4 * $3 * 16 / 0.060, 1))")
  bench "$1" "sim_${2}_$3" --request-rate-range "$rate" --request-distribution poisson --measurement-interval "$OPEN_INTERVAL_MS"
}
# The two policies side by side at each load, so that a drift of the shared machine falls on both.
for n in 1 2; do
  for load in $LOADS; do
    for policy in triton adaptive; do
      open_run "open_${policy}_${n}_$load" "$policy" "$n" "$load"
    done
  done
done
# Issue 14's comparison (one instance, 70 %) once more in each order, PAIRS times: under Poisson arrivals the
# two policies nearly always decide alike, so one window each cannot tell their p99s apart from the noise.
for i in $(seq 1 "$PAIRS"); do
  order="adaptive triton"; [ $((i % 2)) = 0 ] && order="triton adaptive"
  for policy in $order; do
    open_run "ab_${policy}_1_0.7_$i" "$policy" 1 0.7
  done
done
say "summary"
dest="$OUT"; [ "$DOCS" = 1 ] && dest=docs/perf && mkdir -p "$dest"
"$PY" scripts/bench/simulated_summary.py "$OUT" "$dest"
