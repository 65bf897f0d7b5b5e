// Package modelconfig holds the Go messages generated from
// model_config.proto: the subset of Triton's ModelConfig (same message names,
// field names and numbers) that ofaserve reads from config.pbtxt files and
// serves over the model-configuration endpoints. Regenerate with `make proto`.
//
// Beside the generated code, configjson.go is the config's JSON form as
// Triton serves and accepts it: ToJSON (GET /v2/models/{m}/config) and
// FromJSON (the "config" parameter of a repository load request).
package modelconfig
