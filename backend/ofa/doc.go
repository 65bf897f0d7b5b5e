// Package ofa is the model kind "ofa" (config.pbtxt backend: "ofa"): OFA
// visual entailment served from an encoded image and text, the model
// ofa_entailment that scripts/export_ofa.py writes. It is glue: a request's
// images go through preprocess (PIL-exact tensors) and its premise and
// hypothesis through preprocess/prompt and preprocess/bpe (OFA's prompt ids)
// in the caller's goroutine, so a bad element is refused with a 400 that names
// it before anything is queued; the prepared request then joins the dynamic
// batcher, whose executor stacks the batch's images, right-pads the ids to the
// batch's longest row, runs one forward of the TorchScript module and turns
// each row's three logits into probabilities and a label. The inputs,
// outputs, base64 rule and config parameters are the contract written down in
// models/README.md ("The ofa kind").
package ofa
