#!/usr/bin/env bash
# Per-call overhead of Go -> libofatorch -> forward, against a C++ loop calling the same TorchScript module
# directly through torch::jit (build/ofatorch_bench_direct), measured in the same run, rounds interleaved.
# Model: the tiny fixture (MLP f32[8,16] -> f32[8,4]) on CPU. Prints, for both, wall ns/call and process
# CPU ns/call (user+system time of the whole process, Go's runtime included: the steadier figure on a
# shared machine), and the ratios Go / C++ (1.00 means no overhead).
# Env: ROUNDS (default 5), SECS per measurement (default 2).
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

dwall=() dcpu=() gwall=() gcpu=()
for ((r = 1; r <= ROUNDS; r++)); do
  read -r dw dc <<<"$(build/ofatorch_bench_direct "$work/fixtures/tiny.pt" 8 16 "$SECS" |
    awk '/^direct_ns_per_call/ {w=$2} /^direct_cpu_ns_per_call/ {c=$2} END {print w, c}')"
  read -r gw gc <<<"$(OFASERVE_FIXTURES="$work/fixtures" "$work/libtorch.test" -test.run '^$' \
    -test.bench '^BenchmarkForward$' -test.benchtime "${SECS}s" |
    awk '/^BenchmarkForward/ {for (i = 1; i < NF; i++) {if ($(i+1) == "ns/op") w=$i; if ($(i+1) == "cpu-ns/op") c=$i}} END {print w, c}')"
  printf 'round %d: C++ direct %7.0f ns/call (cpu %7.0f)   Go via shim %7.0f ns/call (cpu %7.0f)\n' \
    "$r" "$dw" "$dc" "$gw" "$gc"
  dwall+=("$dw") dcpu+=("$dc") gwall+=("$gw") gcpu+=("$gc")
done
# The minimum is the least disturbed estimate on a shared machine; the median is printed alongside.
stat() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {printf "%.0f %.0f", v[1], v[int((NR+1)/2)]}'; }
report() { # name direct... -- go...
  local name="$1"; shift
  local d=() g=() side=d
  for v in "$@"; do if [ "$v" = -- ]; then side=g; elif [ $side = d ]; then d+=("$v"); else g+=("$v"); fi; done
  read -r dmin dmed <<<"$(stat "${d[@]}")"
  read -r gmin gmed <<<"$(stat "${g[@]}")"
  awk -v n="$name" -v dm="$dmin" -v dd="$dmed" -v gm="$gmin" -v gd="$gmed" 'BEGIN {
    printf "%-4s C++ direct min %6.0f median %6.0f | Go via shim min %6.0f median %6.0f | ratio %.3f (min) %.3f (median)\n",
      n, dm, dd, gm, gd, gm / dm, gd / dd }'
}
echo "ns per call (goal: ratio <= 1.05)"
report wall "${dwall[@]}" -- "${gwall[@]}"
report cpu "${dcpu[@]}" -- "${gcpu[@]}"
