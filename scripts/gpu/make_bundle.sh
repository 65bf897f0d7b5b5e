#!/usr/bin/env bash
# make_bundle.sh (`make gpu-tests`): everything scripts/gpu/gpu_session.sh needs on a GPU machine that has no
# Go, in one file that fits the 64 MiB a device run carries: bin/gpu-bundle.tar.xz holding
#   bin/ofaserve, bin/ofabench                       the binaries (stripped)
#   bin/gpu-tests/<pkg>.test + manifest.tsv          the test binaries of GPU_TEST_PKGS (stripped), one
#                                                    "<binary>\t<package dir>" line each (gpu_check.sh runs them)
#   bin/gpu-tests/parity-sources/                    the photos preprocess/testdata/pil_ref.py builds its parity
#                                                    images from (Debian's python-matplotlib-data and
#                                                    python3-skimage, which a GPU box lacks: OFASERVE_PARITY_SOURCES)
# The binaries link libofatorch.so at run time (LD_LIBRARY_PATH first), so the GPU box's shim, built there
# against its PyTorch, is the one they use.
# Usage: scripts/gpu/make_bundle.sh "<package dirs>"   (run from the repository root, after `make shim`)
set -euo pipefail
cd "$(dirname "$0")/../.."
PKGS="${1:?usage: make_bundle.sh \"pkg dirs\"}"
rm -rf bin/gpu-tests bin/gpu-bundle.tar.xz
mkdir -p bin/gpu-tests/parity-sources
go build -ldflags='-s -w' -o bin/ ./cmd/ofaserve ./cmd/ofabench
for p in $PKGS; do
  n="$(echo "$p" | tr / -).test"
  go test -c -ldflags='-s -w' -o "bin/gpu-tests/$n" "./$p"
  printf '%s\t%s\n' "$n" "$p" >>bin/gpu-tests/manifest.tsv
done
/usr/bin/python3 - bin/gpu-tests/parity-sources <<'PYEOF'
import os, shutil, subprocess, sys
sys.path.insert(0, "preprocess/testdata")
import pil_ref  # the list of source files, and where Debian keeps them
hopper, data = pil_ref.sources()
out = sys.argv[1]
shutil.copy(hopper, out)
for f in pil_ref.SKIMAGE_FILES:
    shutil.copy(os.path.join(data, f), out)
PYEOF
tar -I 'xz -T0 -6' -cf bin/gpu-bundle.tar.xz bin/ofaserve bin/ofabench bin/gpu-tests
size=$(stat -c %s bin/gpu-bundle.tar.xz)
echo "make_bundle: bin/gpu-bundle.tar.xz $((size / 1048576)) MiB ($(wc -l <bin/gpu-tests/manifest.tsv) test binaries, $(ls bin/gpu-tests/parity-sources | wc -l) parity sources)"
[ "$size" -lt $((56 * 1048576)) ] || { echo "make_bundle: the bundle is over 56 MiB: a device run carries 64 MiB in all" >&2; exit 1; }
