#!/usr/bin/env bash
# gpu_check.sh: runs ofaserve's tests on a GPU machine that has a CUDA PyTorch wheel, CMake and a C++
# compiler, but no Go and no network.
#
#   1. builds the shim (libofatorch.so) against the wheel's libtorch into build-gpu/ and checks that it
#      really links libtorch_cuda;
#   2. runs the shim's C ABI test (ctest) there;
#   3. runs every Go test binary listed in bin/gpu-tests/manifest.tsv (built beforehand on a machine with
#      Go by `make gpu-tests`; one "<binary>\t<package dir>" line each) from its package folder with
#      OFASERVE_TEST_DEVICE=cuda:0, the GPU-built shim and the wheel's libraries first on LD_LIBRARY_PATH,
#      and OFASERVE_PARITY_SOURCES=bin/gpu-tests/parity-sources (the photos of the parity tests);
#   4. serve (when bin/ofaserve, built by `make build`, was carried): exports a seeded micro OFA with the
#      box's Python (--device cuda, or cpu when OFASERVE_TEST_DEVICE=cpu), starts bin/ofaserve on loopback
#      against the GPU-built shim and the wheel's libraries, waits for /v2/health/ready, sends the
#      tutorial's request with curl (`curl -s -X POST localhost:PORT/v2/models/ofa_entailment/infer
#      -d @body.json`, no Content-Type; IMAGE a JPEG made on the spot with PIL or torchvision) and checks
#      HTTP 200 and a RESULT label; checks that the process mapped build-gpu/libofatorch.so (and
#      libtorch_cuda), that the model config says KIND_GPU on a GPU run, notes the nv_gpu_* gauges (absent
#      without NVML is a note), then SIGTERM and an exit within --exit-timeout-secs (EXIT_TIMEOUT);
#   5. prints a summary, then the curl transcript (also in build-gpu/logs/serve-transcript.txt).
#      Exit status 0 only when every step passed.
#
# Bounded to about 6 minutes in all: each step gets what is left of BUDGET seconds, less the
# SERVE_BUDGET seconds kept for step 4, which is bounded by them.
#
# Usage: scripts/gpu/gpu_check.sh [--dry-run]
#   --dry-run: print what would run, without a GPU, a build or tests (checks the script's own logic).
# Env: OFASERVE_PYTHON (default python3: the interpreter with the CUDA wheel), OFASERVE_TEST_DEVICE
#      (default cuda:0), BUDGET (default 340 seconds), SERVE_BUDGET (default 90 seconds, within BUDGET),
#      EXIT_TIMEOUT (default 10 seconds), JOBS (default: all cores), OFASERVE_BPE_DIR (the exporter's).
#      GPU_CHECK_ALLOW_CPU=1 turns the CUDA checks into notes, to rehearse the script on a CPU machine
#      (with OFASERVE_TEST_DEVICE=cpu).
#
# Rehearsal on a CPU machine with Debian's libtorch (how this script is checked without a GPU): a fake
# wheel layout whose TorchConfig.cmake fails like a CUDA wheel's on a box without nvcc, so the manual
# import runs too; then the whole script, serve step included:
#   make build gpu-tests
#   w=/tmp/fakewheel/torch; mkdir -p "$w/lib" "$w/share/cmake/Torch"; ln -sfn /usr/include "$w/include"
#   for l in torch torch_cpu c10; do ln -sf "/usr/lib/x86_64-linux-gnu/lib$l.so" "$w/lib/"; done
#   printf '%s\n' 'set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=1")' \
#     'message(FATAL_ERROR "simulated CUDA wheel: no CUDA toolkit")' >"$w/share/cmake/Torch/TorchConfig.cmake"
#   TORCH_CMAKE_PREFIX=$w/share/cmake TORCH_LIB_DIR=$w/lib GPU_CHECK_ALLOW_CPU=1 OFASERVE_TEST_DEVICE=cpu \
#     OFASERVE_PYTHON=/usr/bin/python3 scripts/gpu/gpu_check.sh
#
# The wheel's TorchConfig.cmake insists on a CUDA toolkit (nvcc); without one the configure fails and we
# configure again with -DOFA_TORCH_MANUAL=ON, which imports the wheel's libraries by hand.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT="$(pwd)"
PY="${OFASERVE_PYTHON:-python3}"
DEVICE="${OFASERVE_TEST_DEVICE:-cuda:0}"
BUDGET="${BUDGET:-340}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 4)}"
BUILD="$ROOT/build-gpu"
MANIFEST="$ROOT/bin/gpu-tests/manifest.tsv"
ALLOW_CPU="${GPU_CHECK_ALLOW_CPU:-0}"
SERVE_BUDGET="${SERVE_BUDGET:-90}"
EXIT_TIMEOUT="${EXIT_TIMEOUT:-10}"
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
# Seconds of BUDGET kept back from steps 1-3 for the serve step (0 once it starts, or without bin/ofaserve).
RESERVE=0
[ -x "$ROOT/bin/ofaserve" ] && RESERVE="$SERVE_BUDGET"

summary=()
failed=0
note() { summary+=("$(printf '%-28s %s' "$1" "$2")"); }
fail() { note "$1" "FAIL $2"; failed=1; }
# cuda_fail: a failure on a GPU box, a note when rehearsing on a CPU machine.
cuda_fail() { if [ "$ALLOW_CPU" = 1 ]; then note "$1" "not CUDA (rehearsal): $2"; else fail "$1" "$2"; fi; }
left() { local l=$((BUDGET - RESERVE - SECONDS)); [ "$l" -lt 10 ] && l=10; echo "$l"; }
# run <step> <cmd...>: runs a command with the remaining budget as its timeout, output to a log.
run() {
  local step="$1"; shift
  local log="$BUILD/logs/${step//\//_}.log"
  if [ "$DRY" = 1 ]; then
    echo "[dry-run] $step: $*"
    return 0
  fi
  mkdir -p "$BUILD/logs"
  timeout "$(left)" "$@" >"$log" 2>&1
}
finish() {
  echo
  echo "=== gpu_check summary (${SECONDS}s) ==="
  printf '%s\n' "${summary[@]}"
  [ "$failed" = 0 ] && echo "RESULT: PASS" || echo "RESULT: FAIL (logs in build-gpu/logs/)"
  if [ -n "$serve_transcript" ] && [ -s "$serve_transcript" ]; then
    echo
    echo "=== curl transcript (build-gpu/logs/serve-transcript.txt) ==="
    cat "$serve_transcript"
  fi
  exit "$failed"
}
# The serve step's server and scratch folder never outlive the script.
serve_pid="" serve_tmp="" serve_transcript=""
serve_cleanup() {
  [ -n "$serve_pid" ] && kill -KILL "$serve_pid" 2>/dev/null
  [ -n "$serve_tmp" ] && rm -rf "$serve_tmp"
  return 0
}
trap serve_cleanup EXIT

# --- the wheel --------------------------------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  PREFIX="<torch.utils.cmake_prefix_path>"; TORCH_LIB="<torch/lib>"
else
  if ! info="$("$PY" -c 'import os, torch
print(torch.utils.cmake_prefix_path)
print(os.path.join(os.path.dirname(torch.__file__), "lib"))
print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")' 2>&1)"; then
    fail "torch wheel" "$PY cannot import torch: $info"
    finish
  fi
  PREFIX="$(sed -n 1p <<<"$info")"; TORCH_LIB="$(sed -n 2p <<<"$info")"
  note "torch wheel" "$(sed -n 3p <<<"$info")"
  grep -q "available True" <<<"$info" || cuda_fail "cuda" "torch.cuda.is_available() is False"
fi

# --- build the shim against the wheel -------------------------------------------------------------
PREFIX="${TORCH_CMAKE_PREFIX:-$PREFIX}" TORCH_LIB="${TORCH_LIB_DIR:-$TORCH_LIB}"
configure() { # extra cmake args...
  run cmake-configure cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX" \
    -DOFA_PYTHON="$(command -v "$PY" || echo "$PY")" "$@"
}
how="find_package(Torch)"
if ! configure; then
  how="manual import (no CUDA toolkit for TorchConfig)"
  [ "$DRY" = 1 ] || rm -rf "$BUILD/CMakeCache.txt" "$BUILD/CMakeFiles"
  configure -DOFA_TORCH_MANUAL=ON || { fail "shim configure" "see build-gpu/logs/cmake-configure.log"; finish; }
fi
if run cmake-build cmake --build "$BUILD" -j"$JOBS" --target ofatorch ofatorch_capi_test; then
  note "shim build" "ok via $how"
else
  fail "shim build" "see build-gpu/logs/cmake-*.log"
  finish
fi
if [ "$DRY" = 0 ]; then
  if readelf -d "$BUILD/libofatorch.so" 2>/dev/null | grep -q 'libtorch_cuda'; then
    note "links libtorch_cuda" "yes"
  else
    cuda_fail "links libtorch_cuda" "no: the --as-needed trap, or a CPU-only libtorch"
  fi
fi

# --- the C ABI test --------------------------------------------------------------------------------
if run ctest bash -c "cd '$BUILD' && ctest --output-on-failure"; then
  note "ctest (C ABI)" "ok"
else
  fail "ctest (C ABI)" "see build-gpu/logs/ctest.log"
fi

# --- Go test binaries ------------------------------------------------------------------------------
export LD_LIBRARY_PATH="$BUILD:$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OFASERVE_TEST_DEVICE="$DEVICE" OFASERVE_PYTHON="$PY"
# The parity tests build their images from photos Debian packages ship; a GPU box has them from the bundle
# (scripts/gpu/make_bundle.sh), and preprocess/testdata/pil_ref.py reads them there.
if [ -d "$ROOT/bin/gpu-tests/parity-sources" ] && [ -z "${OFASERVE_PARITY_SOURCES:-}" ]; then
  export OFASERVE_PARITY_SOURCES="$ROOT/bin/gpu-tests/parity-sources"
fi
if [ ! -f "$MANIFEST" ]; then
  fail "go tests" "no $MANIFEST: run 'make gpu-tests' on a machine with Go first"
  MANIFEST=/dev/null # the serve step still runs
fi
while IFS=$'\t' read -r bin pkg; do
  [ -z "$bin" ] && continue
  if [ ! -x "$ROOT/bin/gpu-tests/$bin" ] || [ ! -d "$ROOT/$pkg" ]; then
    fail "go $pkg" "missing bin/gpu-tests/$bin or $pkg/"
    continue
  fi
  if [ "$DRY" = 1 ]; then
    echo "[dry-run] go $pkg: (cd $pkg && OFASERVE_TEST_DEVICE=$DEVICE bin/gpu-tests/$bin -test.v -test.count=1)"
    continue
  fi
  log="$BUILD/logs/go_${pkg//\//_}.log"
  start=$SECONDS
  (cd "$ROOT/$pkg" && timeout "$(left)" "$ROOT/bin/gpu-tests/$bin" -test.v -test.count=1) >"$log" 2>&1
  rc=$?
  passed=$(grep -c -- '^--- PASS' "$log")
  failures=$(grep -c -- '--- FAIL' "$log")
  if [ "$rc" = 0 ]; then
    note "go $pkg" "ok ($passed top-level tests, $((SECONDS - start))s)"
  else
    fail "go $pkg" "rc=$rc, $failures failed ($((SECONDS - start))s): $(grep -m3 -- '--- FAIL' "$log" | tr -s ' ' | paste -sd';' -)"
  fi
done <"$MANIFEST"

# --- serve: the carried ofaserve on the GPU-built shim answers the tutorial's curl ------------------
# serve_stop: SIGTERM, then the server must be gone within EXIT_TIMEOUT seconds with status 0.
serve_stop() {
  local t0 rc=0 ms
  t0=$(date +%s%N)
  kill -TERM "$serve_pid" 2>/dev/null
  while kill -0 "$serve_pid" 2>/dev/null && [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt "$EXIT_TIMEOUT" ]; do
    sleep 0.1
  done
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  if kill -0 "$serve_pid" 2>/dev/null; then
    fail "serve: SIGTERM" "still running ${ms} ms after SIGTERM (--exit-timeout-secs=$EXIT_TIMEOUT); killed"
    kill -KILL "$serve_pid" 2>/dev/null
    wait "$serve_pid" 2>/dev/null
  else
    wait "$serve_pid"; rc=$?
    if [ "$rc" = 0 ]; then
      note "serve: SIGTERM" "exited 0 in ${ms} ms (limit ${EXIT_TIMEOUT}s)"
    else
      fail "serve: SIGTERM" "exit status $rc after ${ms} ms (see build-gpu/logs/serve.log)"
    fi
  fi
  serve_pid=""
}

serve_step() {
  local end dev=cuda log="$BUILD/logs/serve.log" port="" mport="" ready=0 code secs t0 shim out kinds gauges
  RESERVE=0
  end=$((SECONDS + $(left)))
  [ "$(left)" -gt "$SERVE_BUDGET" ] && end=$((SECONDS + SERVE_BUDGET))
  sleft() { local l=$((end - SECONDS)); [ "$l" -lt 1 ] && l=1; echo "$l"; }
  [ "$DEVICE" = cpu ] && dev=cpu
  command -v curl >/dev/null || { fail "serve" "no curl on this machine: the tutorial's request needs it"; return; }
  serve_tmp="$(mktemp -d)"
  serve_transcript="$BUILD/logs/serve-transcript.txt"
  rm -f "$serve_transcript"

  if ! timeout "$(sleft)" "$PY" scripts/export_ofa.py --random-init --config micro --seed 0 --device "$dev" \
       --out "$serve_tmp/models" --quiet >"$BUILD/logs/serve-export.log" 2>&1; then
    fail "serve: export" "micro OFA on $dev failed: $(tail -2 "$BUILD/logs/serve-export.log" | paste -sd' ' -)"
    return
  fi
  # The tutorial's body: IMAGE (base64 of a JPEG made here), PREMISE, HYPOTHESIS, in that order; and a
  # copy for the transcript with the base64 shortened.
  if ! timeout "$(sleft)" "$PY" - "$serve_tmp/body.json" "$serve_tmp/body-summary.json" \
       >"$BUILD/logs/serve-body.log" 2>&1 <<'PYEOF'; then
import base64, io, json, sys
W, H = 320, 240
try:
    from PIL import Image
    img = Image.new("RGB", (W, H))
    img.putdata([(x * 255 // W, y * 255 // H, (x + y) * 3 % 256) for y in range(H) for x in range(W)])
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    jpeg, how = buf.getvalue(), "PIL"
except ImportError:
    import torch
    from torchvision.io import encode_jpeg
    y, x = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    jpeg = encode_jpeg(torch.stack([x * 255 // W, y * 255 // H, (x + y) * 3 % 256]).to(torch.uint8), quality=90)
    jpeg, how = jpeg.numpy().tobytes(), "torchvision"
b64 = base64.b64encode(jpeg).decode()
def body(image: str) -> str:
    return json.dumps({"inputs": [
        {"name": "IMAGE", "shape": [1], "datatype": "BYTES", "data": [image]},
        {"name": "PREMISE", "shape": [1], "datatype": "BYTES", "data": ["two dogs run on the grass."]},
        {"name": "HYPOTHESIS", "shape": [1], "datatype": "BYTES", "data": ["there are two animals."]}]},
        separators=(",", ":"))
open(sys.argv[1], "w").write(body(b64))
open(sys.argv[2], "w").write(body(f"{b64[:16]}...<{len(b64)} base64 chars: a {W}x{H} JPEG of {len(jpeg)} bytes made with {how}>"))
PYEOF
    fail "serve: request body" "cannot make a JPEG with $PY (needs PIL or torchvision): $(tail -1 "$BUILD/logs/serve-body.log")"
    return
  fi

  # Ports 0: the kernel picks free ones and the server logs them.
  "$ROOT/bin/ofaserve" --model-repository="$serve_tmp/models" --http-address=127.0.0.1 --http-port=0 \
    --grpc-address=127.0.0.1 --grpc-port=0 --metrics-address=127.0.0.1 --metrics-port=0 \
    --exit-timeout-secs="$EXIT_TIMEOUT" >"$log" 2>&1 &
  serve_pid=$!
  t0=$SECONDS
  while [ "$SECONDS" -lt "$end" ] && kill -0 "$serve_pid" 2>/dev/null; do
    [ -n "$port" ] || port=$(sed -n 's/.*msg=listening endpoint=http address=.*:\([0-9]*\)$/\1/p' "$log" | head -1)
    if [ -n "$port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
         "http://127.0.0.1:$port/v2/health/ready")" = 200 ]; then
      ready=1
      break
    fi
    sleep 0.5
  done
  if ! kill -0 "$serve_pid" 2>/dev/null; then
    wait "$serve_pid"; code=$?; serve_pid=""
    fail "serve: ready" "bin/ofaserve exited with status $code: $(tail -1 "$log")"
    return
  fi
  if [ "$ready" = 0 ]; then
    fail "serve: ready" "/v2/health/ready not 200 within $((SECONDS - t0))s (see build-gpu/logs/serve.log)"
    serve_stop
    return
  fi
  mport=$(sed -n 's/.*msg=listening endpoint=metrics address=.*:\([0-9]*\)$/\1/p' "$log" | head -1)
  note "serve: ready" "bin/ofaserve on 127.0.0.1:$port in $((SECONDS - t0))s"

  # The recipe: this binary runs on the shim built here, and on a GPU box with the wheel's libtorch_cuda.
  shim=$(grep -o '/[^ ]*libofatorch\.so[^ ]*' "/proc/$serve_pid/maps" 2>/dev/null | head -1)
  if [ -n "$shim" ] && [ "$(readlink -f "$shim")" = "$(readlink -f "$BUILD/libofatorch.so")" ]; then
    note "serve: shim" "build-gpu/libofatorch.so"
  else
    fail "serve: shim" "the server mapped '${shim:-no libofatorch.so}', not build-gpu/libofatorch.so"
  fi
  if [ "$dev" = cuda ]; then
    grep -q 'libtorch_cuda' "/proc/$serve_pid/maps" 2>/dev/null && note "serve: libtorch_cuda" "mapped" ||
      cuda_fail "serve: libtorch_cuda" "not mapped by the server"
  fi

  # The tutorial's request, as the tutorial sends it (-o/-w/--max-time only capture the reply).
  t0=$(date +%s%N)
  code=$(cd "$serve_tmp" && curl -s -X POST "localhost:$port/v2/models/ofa_entailment/infer" -d @body.json \
           -o resp.json -w '%{http_code}' --max-time "$(sleft)")
  secs=$(( ($(date +%s%N) - t0) / 1000000 ))
  {
    echo "# ofaserve (bin/ofaserve + build-gpu/libofatorch.so, torch $(sed -n 3p <<<"${info:-}" | cut -d' ' -f1)) on $DEVICE, micro OFA (random weights, seed 0), exported with --device $dev"
    echo "\$ curl -s -X POST localhost:$port/v2/models/ofa_entailment/infer -d @body.json"
    echo "# body.json: $(cat "$serve_tmp/body-summary.json")"
    echo "# HTTP ${code:-none}, ${secs} ms"
    cat "$serve_tmp/resp.json" 2>/dev/null
    echo
  } >"$serve_transcript"
  out=""
  if [ "$code" = 200 ]; then
    out=$("$PY" - "$serve_tmp/resp.json" 2>&1 <<'PYEOF'
import json, sys
reply = json.load(open(sys.argv[1]))
outs = {o["name"]: o for o in reply["outputs"]}
result = json.loads(outs["RESULT"]["data"][0])
labels = {"entailment", "contradiction", "neutral"}
assert result["label"] in labels, f"RESULT label {result['label']!r}"
assert set(result["all_scores"]) == labels, f"RESULT all_scores {result['all_scores']}"
assert outs["LABEL"]["data"] == [result["label"]], f"LABEL {outs['LABEL']['data']} vs RESULT {result['label']}"
print(f"{result['label']} {result['confidence']:.4f}")
PYEOF
    ) && note "serve: tutorial curl" "HTTP 200 in ${secs} ms, RESULT $out" ||
      fail "serve: tutorial curl" "HTTP 200 but the reply is wrong: $(tail -1 <<<"$out")"
  else
    fail "serve: tutorial curl" "HTTP ${code:-none}: $(head -c 300 "$serve_tmp/resp.json" 2>/dev/null)"
  fi

  # Where the model runs, as the server reports it.
  kinds=$(curl -s --max-time 5 "http://127.0.0.1:$port/v2/models/ofa_entailment/config" | "$PY" -c '
import json, sys
print(" ".join(g["kind"] + (str(g.get("gpus") or "") if g["kind"] == "KIND_GPU" else "") for g in json.load(sys.stdin)["instance_group"]))' 2>/dev/null)
  if [ "$dev" = cuda ]; then
    [ -n "$kinds" ] && ! grep -qv '^KIND_GPU' <<<"${kinds// /$'\n'}" && note "serve: instance kind" "$kinds" ||
      fail "serve: instance kind" "ofa_entailment config says '${kinds:-?}', not KIND_GPU"
  else
    note "serve: instance kind" "${kinds:-?} (CPU rehearsal)"
  fi

  # GPU gauges: present where NVML is; their absence is only a note.
  gauges=$(curl -s --max-time 5 "http://127.0.0.1:$mport/metrics" | grep -o '^nv_gpu_[a-z_]*' | sort -u | paste -sd' ' -)
  if [ -n "$gauges" ]; then
    note "serve: nv_gpu_* metrics" "$gauges"
  else
    note "serve: nv_gpu_* metrics" "absent, a note: $(sed -n 's/.*msg="\(GPU metrics disabled[^"]*\)" reason=\([^ ]*\).*/\1 (\2)/p' "$log" | head -1)"
  fi
  serve_stop
}

if [ "$DRY" = 1 ]; then
  echo "[dry-run] serve (${SERVE_BUDGET}s, only when bin/ofaserve exists):"
  echo "  $PY scripts/export_ofa.py --random-init --config micro --seed 0 --device $([ "$DEVICE" = cpu ] && echo cpu || echo cuda) --out <tmp>/models --quiet"
  echo "  bin/ofaserve --model-repository=<tmp>/models --http-port=0 --grpc-port=0 --metrics-port=0 --exit-timeout-secs=$EXIT_TIMEOUT (on 127.0.0.1)"
  echo "  curl -s -X POST localhost:<port>/v2/models/ofa_entailment/infer -d @body.json; GET <port>/v2/models/ofa_entailment/config, <metrics port>/metrics; SIGTERM"
elif [ -x "$ROOT/bin/ofaserve" ]; then
  serve_step
  RESERVE=0
else
  note "serve" "skipped: no bin/ofaserve (run 'make build' on a machine with Go and carry bin/)"
fi

# --- per-call time on the GPU (informational) ------------------------------------------------------
if [ "$DRY" = 0 ] && [ -x "$ROOT/bin/gpu-tests/libtorch.test" ] && [ "$(left)" -gt 40 ]; then
  ns=$(cd "$ROOT/libtorch" && timeout 60 "$ROOT/bin/gpu-tests/libtorch.test" -test.run '^$' \
        -test.bench '^BenchmarkForward$' -test.benchtime 2s 2>/dev/null | awk '/^BenchmarkForward/ {print $3; exit}')
  note "Forward tiny on $DEVICE" "${ns:-?} ns/call"
fi
finish
