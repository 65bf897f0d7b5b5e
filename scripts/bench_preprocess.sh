#!/usr/bin/env bash
# Preprocessing throughput per core: a 640x480 JPEG -> 480x480 normalized CHW float32,
# ofaserve's Go pipeline (preprocess.Prepare, -cpu 1) vs OFA's Python pipeline
# (PIL + torchvision, torch.set_num_threads(1)), measured in the same run on the same file.
# Both report the best of several rounds, which is the least disturbed by other load.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${OFASERVE_PYTHON:-/usr/bin/python3}
ROUNDS=${ROUNDS:-5}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
jpg="$tmp/photo_640x480.jpg"
OMP_NUM_THREADS=1 "$PY" scripts/bench_preprocess.py make "$jpg"

go test -c -o "$tmp/preprocess.test" ./preprocess >/dev/null
go_ms=$(OFASERVE_BENCH_JPEG="$jpg" "$tmp/preprocess.test" -test.run '^$' -test.bench '^BenchmarkPrepare$' \
  -test.cpu 1 -test.count "$ROUNDS" -test.benchtime 1s | awk '/^BenchmarkPrepare/ {print $3/1e6}' | sort -g | head -1)
py_ms=$(OMP_NUM_THREADS=1 "$PY" scripts/bench_preprocess.py time "$jpg" "$ROUNDS")

awk -v g="$go_ms" -v p="$py_ms" 'BEGIN {
  printf "640x480 JPEG -> 480x480 CHW float32, one core (best of rounds)\n"
  printf "  Go preprocess.Prepare : %8.3f ms/image  %7.1f images/s\n", g, 1000/g
  printf "  PIL + torchvision     : %8.3f ms/image  %7.1f images/s\n", p, 1000/p
  printf "  speed-up              : %8.2fx (goal >= 1.5x)\n", p/g
}'
