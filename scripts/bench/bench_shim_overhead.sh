#!/usr/bin/env bash
# Per-call overhead of Go -> libofatorch -> forward, against a C++ loop calling the same TorchScript module
# directly through torch::jit (build/ofatorch_bench_direct), measured in the same run, rounds interleaved.
# Model: the tiny fixture (MLP f32[8,16] -> f32[8,4]) on CPU. Every contender copies the input from host
# memory into a tensor of its own (the shim's contract requires that copy) and the output back into a
# reused host buffer.
#
# Contenders, per round:
#   C++ direct   torch::jit in a C++ loop: the baseline
#   C++ shim     the same loop through the shim's C ABI (ofa_forward_into): the shim's own cost, no Go
#   Go server    libtorch.Module.ForwardInto reusing its outputs (the path backend/ofa uses), yielding to
#                the Go scheduler every 100 calls as a server goroutine does between batches
#   Go tight     the same, never yielding: the runtime then preempts and hands off the goroutine's P every
#                10 ms mid-call (it looks stuck in one long cgo call) and sysmon wakes ~3000 times a second
# Prints, for each, wall ns/call and process CPU ns/call (user+system time of the whole process, Go's
# runtime included: the steadier figure on a shared machine), and the ratios to C++ direct (1.00 means no
# overhead). Env: ROUNDS (default 5), SECS per measurement (default 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${OFASERVE_PYTHON:-/usr/bin/python3}"
ROUNDS="${ROUNDS:-5}"
SECS="${SECS:-2}"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PY" libtorch/testdata/make_fixtures.py --out "$work/fixtures"
go test -c -o "$work/libtorch.test" ./libtorch

cpp() { # mode -> "wall cpu"
  build/ofatorch_bench_direct "$work/fixtures/tiny.pt" 8 16 "$SECS" "$1" |
    awk '/^direct_ns_per_call/ {w=$2} /^direct_cpu_ns_per_call/ {c=$2} END {print w, c}'
}
gobench() { # sub-benchmark -> "wall cpu"
  OFASERVE_FIXTURES="$work/fixtures" "$work/libtorch.test" -test.run '^$' \
    -test.bench "^BenchmarkForwardInto\$/^$1\$" -test.benchtime "${SECS}s" |
    awk '/^BenchmarkForwardInto/ {for (i = 1; i < NF; i++) {if ($(i+1) == "ns/op") w=$i; if ($(i+1) == "cpu-ns/op") c=$i}} END {print w, c}'
}

names=(direct shim server tight)
labels=("C++ direct" "C++ shim" "Go server" "Go tight")
declare -A wall cpu
for ((r = 1; r <= ROUNDS; r++)); do
  line="round $r:"
  for n in "${names[@]}"; do
    case $n in
      direct | shim) read -r w c <<<"$(cpp "$n")" ;;
      *) read -r w c <<<"$(gobench "$n")" ;;
    esac
    wall[$n]+="$w " cpu[$n]+="$c "
    line+="$(printf '  %s %6.0f (cpu %6.0f)' "$n" "$w" "$c")"
  done
  echo "$line"
done
# The median is the headline (the minimum, the least disturbed estimate on a shared machine, beside it).
stat() { printf '%s\n' $1 | sort -g | awk '{v[NR]=$1} END {printf "%.0f %.0f", v[1], v[int((NR+1)/2)]}'; }
echo "ns per call, min and median of $ROUNDS rounds (goal: Go / C++ direct <= 1.05)"
for kind in cpu wall; do
  read -r dmin dmed <<<"$(if [ $kind = cpu ]; then stat "${cpu[direct]}"; else stat "${wall[direct]}"; fi)"
  for i in "${!names[@]}"; do
    n=${names[$i]}
    read -r mn md <<<"$(if [ $kind = cpu ]; then stat "${cpu[$n]}"; else stat "${wall[$n]}"; fi)"
    awk -v k="$kind" -v l="${labels[$i]}" -v mn="$mn" -v md="$md" -v dmn="$dmin" -v dmd="$dmed" 'BEGIN {
      printf "%-4s %-10s min %6.0f median %6.0f | ratio to C++ direct %.3f (min) %.3f (median)\n", k, l, mn, md, mn / dmn, md / dmd }'
  done
done
