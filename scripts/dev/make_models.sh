#!/usr/bin/env bash
# Creates the default model repository for `make run` (and tests that want a served model):
# OFA `tiny` (real architecture, 33M parameters) with seeded random weights at 256x256 px, exported by
# scripts/export_ofa.py.  Skips the export when DIR already holds an export made with the same
# arguments and the same exporter sources (stamp: DIR/ofa_entailment/export.stamp).
# Usage: scripts/dev/make_models.sh [DIR]   (default: models)
# Env:   OFA_EXPORT_ARGS overrides the exporter arguments; OFASERVE_PYTHON the interpreter.
set -euo pipefail
DIR="${1:-models}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
cd "$(dirname "$0")/../.."
PY="${OFASERVE_PYTHON:-/usr/bin/python3}"

ARGS=(--random-init --config tiny --image-size 256 --seed 0 --dtype fp32 --device cpu)
if [ -n "${OFA_EXPORT_ARGS:-}" ]; then
  read -r -a ARGS <<< "$OFA_EXPORT_ARGS"
fi

stamp_file="$DIR/ofa_entailment/export.stamp"
stamp="$( { printf '%s\n' "${ARGS[@]}"; cat scripts/export_ofa.py scripts/ofa/*.py; } | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] \
   && [ -f "$DIR/ofa_entailment_raw/1/model.pt" ] && [ -f "$DIR/ofa_entailment/1/model.pt" ] \
   && [ -f "$DIR/ofa_entailment/1/ofa_meta.json" ]; then
  echo "models: $DIR is up to date (${ARGS[*]})"
  exit 0
fi
echo "models: exporting ${ARGS[*]} into $DIR"
"$PY" scripts/export_ofa.py "${ARGS[@]}" --out "$DIR"
echo "$stamp" > "$stamp_file"
