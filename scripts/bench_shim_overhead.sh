#!/usr/bin/env bash
# Per-call overhead of Go -> libofatorch -> forward, against a C++ loop calling the same TorchScript module
# directly through torch::jit (build/ofatorch_bench_direct), measured in the same run, rounds interleaved.
# Model: the tiny fixture (MLP f32[8,16] -> f32[8,4]) on CPU. Prints ns/call for both and the ratio
# (Go / C++; 1.00 means no overhead). Env: ROUNDS (default 5), SECS per measurement (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${OFASERVE_PYTHON:-/usr/bin/python3}"
ROUNDS="${ROUNDS:-5}"
SECS="${SECS:-2}"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PY" libtorch/testdata/make_fixtures.py --out "$work/fixtures"
go test -c -o "$work/libtorch.test" ./libtorch

direct=() gocall=()
for ((r = 1; r <= ROUNDS; r++)); do
  d="$(build/ofatorch_bench_direct "$work/fixtures/tiny.pt" 8 16 "$SECS" | awk '/^direct_ns_per_call/ {print $2}')"
  g="$(OFASERVE_FIXTURES="$work/fixtures" "$work/libtorch.test" -test.run '^$' -test.bench '^BenchmarkForward$' \
        -test.benchtime "${SECS}s" | awk '/^BenchmarkForward/ {print $3}')"
  printf 'round %d: C++ direct %8.0f ns/call   Go via shim %8.0f ns/call\n' "$r" "$d" "$g"
  direct+=("$d") gocall+=("$g")
done
# min is the least noisy estimate on a shared machine; the median is printed alongside.
stat() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {printf "%.0f %.0f", v[1], v[int((NR+1)/2)]}'; }
read -r dmin dmed <<<"$(stat "${direct[@]}")"
read -r gmin gmed <<<"$(stat "${gocall[@]}")"
awk -v dm="$dmin" -v dd="$dmed" -v gm="$gmin" -v gd="$gmed" 'BEGIN {
  printf "C++ direct:  min %.0f ns/call, median %.0f\n", dm, dd
  printf "Go via shim: min %.0f ns/call, median %.0f\n", gm, gd
  printf "overhead ratio (Go/C++): %.3f (min), %.3f (median); goal <= 1.05\n", gm / dm, gd / dd
}'
