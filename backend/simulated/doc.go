// Package simulated is a model kind that stands in for an accelerator whose cost is known, so that the
// server can be measured against it (config.pbtxt `platform: "simulated"`). It is not a model: its answers
// are deterministic numbers, not predictions.
//
// Everything in front of the device runs for real. A config whose inputs are the ofa kind's (IMAGE,
// HYPOTHESIS, optional PREMISE) gets the ofa kind's own preparation (ofa.Pipeline: base64/JPEG decoding,
// resizing, the prompt and its BPE tokens, read from the version folder's ofa_meta.json and tokenizer) and
// the ofa kind's outputs (RESULT, LABEL, SCORES). Any other config is served as raw tensors: every input is
// accepted as the signature validates it, and every output must be TYPE_FP32 with fixed dims.
//
// The forward of a batch of b units whose longest request is L tokens long (0 for raw tensors) waits
//
//	t(b, L) = a + b·c + L·d
//
// on a timer, using no CPU, and gives up when its context ends. The batch then answers with logits of the
// right shape whose values are a hash of each row's input (the same input gives the same answer). a, c and
// d are the config parameters simulated_base_microseconds, simulated_per_sample_microseconds and
// simulated_per_token_microseconds (integers >= 0; an unknown simulated_* key is refused). Their defaults,
// 20000, 2500 and 0, are the device of issue 14's acceptance figures (t(16) = 60 ms), chosen to be feedable
// by a 2-core host; see models/README.md for the contract and docs/PERFORMANCE.md for what it measures.
//
// Batching is the model's dynamic_batching block, policy included (backend.BatcherConfig), with one
// simulated device per instance of instance_group and the ofa kind's early hand-off (batcher.NewStaged).
package simulated
