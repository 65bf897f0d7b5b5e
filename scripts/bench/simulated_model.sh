# simulated_model.sh: sourced by bench_simulated.sh and chaos.sh (not run). Defines
#
#   simulated_model REPO NAME INSTANCES DYNAMIC_BATCHING_EXTRA [PARAMETER_LINE...]
#
# which writes REPO/NAME: a `platform: "simulated"` model (backend/simulated) with the ofa kind's inputs and
# outputs, max_batch_size 16, max_queue_delay 2 ms plus DYNAMIC_BATCHING_EXTRA (e.g. a default_queue_policy),
# INSTANCES instances, the device t(b) = 20 ms + 2.5 ms·b, any further parameter lines, and the tokenizer files
# of the exported models/ofa_entailment (which must exist: `make models`).
simulated_model() {
  local repo="$1" name="$2" instances="$3" batching="$4"
  shift 4
  mkdir -p "$repo/$name/1"
  cp models/ofa_entailment/1/{ofa_meta.json,vocab.json,merges.txt} "$repo/$name/1/"
  {
    cat <<PBEOF
name: "$name"
platform: "simulated"
max_batch_size: 16
input [
  { name: "IMAGE" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "HYPOTHESIS" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "PREMISE" data_type: TYPE_STRING dims: [ 1 ] optional: true }
]
output [
  { name: "RESULT" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "LABEL" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "SCORES" data_type: TYPE_FP32 dims: [ 3 ] }
]
dynamic_batching { max_queue_delay_microseconds: 2000$batching }
instance_group [ { count: $instances kind: KIND_CPU } ]
parameters { key: "simulated_base_microseconds" value { string_value: "20000" } }
parameters { key: "simulated_per_sample_microseconds" value { string_value: "2500" } }
PBEOF
    local line
    for line in "$@"; do echo "$line"; done
  } >"$repo/$name/config.pbtxt"
}
