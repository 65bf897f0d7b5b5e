#!/usr/bin/env bash
# Preprocessing throughput per core: a 640x480 JPEG -> 480x480 normalized CHW float32,
# ofaserve's Go pipeline (preprocess.Prepare, -cpu 1) vs OFA's Python pipeline
# (PIL + torchvision, torch.set_num_threads(1)), measured in the same run on the same file.
# Both report the best of several rounds, which is the least disturbed by other load.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${OFASERVE_PYTHON:-/usr/bin/python3}
ROUNDS=${ROUNDS:-5}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
jpg="$tmp/photo_640x480.jpg"
OMP_NUM_THREADS=1 "$PY" scripts/bench/bench_preprocess.py make "$jpg"

go test -c -o "$tmp/preprocess.test" ./preprocess >/dev/null
out=$(cd preprocess && OFASERVE_BENCH_JPEG="$jpg" "$tmp/preprocess.test" -test.run '^$' \
  -test.bench '^BenchmarkPrepare$' -test.cpu 1 -test.count "$ROUNDS" -test.benchtime 1s)
go_ms=$(awk '/^BenchmarkPrepare/ {print $3/1e6}' <<<"$out" | sort -g | head -1)
go_cpu=$(awk '/^BenchmarkPrepare/ {print $5}' <<<"$out" | sort -g | head -1)
read -r py_ms py_cpu < <(OMP_NUM_THREADS=1 "$PY" scripts/bench/bench_preprocess.py time "$jpg" "$ROUNDS")

awk -v g="$go_ms" -v p="$py_ms" -v gc="$go_cpu" -v pc="$py_cpu" 'BEGIN {
  printf "640x480 JPEG -> 480x480 CHW float32, one core (best of %s rounds)\n", '"$ROUNDS"'
  printf "                          wall ms/image  images/s   CPU ms/image\n"
  printf "  Go preprocess.Prepare : %10.3f  %9.1f   %10.3f\n", g, 1000/g, gc
  printf "  PIL + torchvision     : %10.3f  %9.1f   %10.3f\n", p, 1000/p, pc
  printf "  speed-up (wall)       : %10.2fx   (goal >= 1.5x)\n", p/g
  printf "  speed-up (CPU time)   : %10.2fx\n", pc/gc
}'
