#!/usr/bin/env bash
# gpu_check.sh: runs ofaserve's tests on a GPU machine that has a CUDA PyTorch wheel, CMake and a C++
# compiler, but no Go and no network.
#
#   1. builds the shim (libofatorch.so) against the wheel's libtorch into build-gpu/ and checks that it
#      really links libtorch_cuda;
#   2. runs the shim's C ABI test (ctest) there;
#   3. runs every Go test binary listed in bin/gpu-tests/manifest.tsv (built beforehand on a machine with
#      Go by `make gpu-tests`; one "<binary>\t<package dir>" line each) from its package folder with
#      OFASERVE_TEST_DEVICE=cuda:0, the GPU-built shim and the wheel's libraries first on LD_LIBRARY_PATH;
#   4. prints a summary. Exit status 0 only when every step passed.
#
# Bounded to about 6 minutes in all (each step gets what is left of BUDGET seconds).
#
# Usage: scripts/gpu_check.sh [--dry-run]
#   --dry-run: print what would run, without a GPU, a build or tests (checks the script's own logic).
# Env: OFASERVE_PYTHON (default python3: the interpreter with the CUDA wheel), OFASERVE_TEST_DEVICE
#      (default cuda:0), BUDGET (default 340 seconds), JOBS (default: all cores).
#      GPU_CHECK_ALLOW_CPU=1 turns the CUDA checks into notes, to rehearse the script on a CPU machine
#      (with OFASERVE_TEST_DEVICE=cpu).
#
# The wheel's TorchConfig.cmake insists on a CUDA toolkit (nvcc); without one the configure fails and we
# configure again with -DOFA_TORCH_MANUAL=ON, which imports the wheel's libraries by hand.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
PY="${OFASERVE_PYTHON:-python3}"
DEVICE="${OFASERVE_TEST_DEVICE:-cuda:0}"
BUDGET="${BUDGET:-340}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 4)}"
BUILD="$ROOT/build-gpu"
MANIFEST="$ROOT/bin/gpu-tests/manifest.tsv"
ALLOW_CPU="${GPU_CHECK_ALLOW_CPU:-0}"
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1

summary=()
failed=0
note() { summary+=("$(printf '%-28s %s' "$1" "$2")"); }
fail() { note "$1" "FAIL $2"; failed=1; }
# cuda_fail: a failure on a GPU box, a note when rehearsing on a CPU machine.
cuda_fail() { if [ "$ALLOW_CPU" = 1 ]; then note "$1" "not CUDA (rehearsal): $2"; else fail "$1" "$2"; fi; }
left() { local l=$((BUDGET - SECONDS)); [ "$l" -lt 10 ] && l=10; echo "$l"; }
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
  exit "$failed"
}

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
if [ ! -f "$MANIFEST" ]; then
  fail "go tests" "no $MANIFEST: run 'make gpu-tests' on a machine with Go first"
  finish
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

# --- per-call time on the GPU (informational) ------------------------------------------------------
if [ "$DRY" = 0 ] && [ -x "$ROOT/bin/gpu-tests/libtorch.test" ] && [ "$(left)" -gt 40 ]; then
  ns=$(cd "$ROOT/libtorch" && timeout 60 "$ROOT/bin/gpu-tests/libtorch.test" -test.run '^$' \
        -test.bench '^BenchmarkForward$' -test.benchtime 2s 2>/dev/null | awk '/^BenchmarkForward/ {print $3}')
  note "Forward tiny on $DEVICE" "${ns:-?} ns/call"
fi
finish
