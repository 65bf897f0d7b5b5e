#!/usr/bin/env bash
# `make run`'s last step: serves the model repository in the foreground and, once the server is ready, prints one
# request the user can paste: the OFA/Triton tutorial's inference call with a real photo that setup installed
# (matplotlib's sample data). Ctrl-C (or SIGTERM) shuts the server down gracefully.
# Usage: scripts/dev/run.sh MODEL_REPO HTTP_PORT [more ofaserve flags]
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO="${1:?model repository}"; PORT="${2:?http port}"; shift 2
PHOTO=/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg # python-matplotlib-data (setup run)

bin/ofaserve --model-repository="$REPO" --http-port="$PORT" "$@" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' INT TERM

ready=""
for _ in $(seq 1 600); do
  kill -0 "$pid" 2>/dev/null || break
  if curl -fs -o /dev/null "localhost:$PORT/v2/health/ready"; then ready=1; break; fi
  sleep 0.2
done
if [ -n "$ready" ] && [ ! -f "$PHOTO" ]; then
  echo "run: ready on :$PORT, but the sample photo $PHOTO is missing (scripts/dev/setup.sh run installs it)" >&2
elif [ -n "$ready" ]; then
  cat <<MSG

ofaserve is ready on :$PORT (the default model has seeded random weights: its answers are not meaningful;
README "Serve the real OFA-large" exports the real checkpoint). Paste this into another shell:

curl -s localhost:$PORT/v2/models/ofa_entailment/infer -d '{"inputs":[{"name":"IMAGE","shape":[1],"datatype":"BYTES","data":["'"\$(base64 -w0 $PHOTO)"'"]},{"name":"PREMISE","shape":[1],"datatype":"BYTES","data":["a woman in a naval uniform with medals."]},{"name":"HYPOTHESIS","shape":[1],"datatype":"BYTES","data":["a person is wearing a uniform."]}]}'

MSG
fi
set +e
wait "$pid"; rc=$?
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; rc=$?; done # a signal interrupts wait: wait for the shutdown
exit "$rc"
