// Package modelconfig holds the Go messages generated from
// model_config.proto: the subset of Triton's ModelConfig (same message names,
// field names and numbers) that ofaserve reads from config.pbtxt files and
// serves over the model-configuration endpoints. Regenerate with `make proto`.
package modelconfig
