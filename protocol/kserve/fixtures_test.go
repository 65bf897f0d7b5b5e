package kserve

import "github.com/ofaserve/ofaserve/backend"

// simpleReq is a JSON request for simple.
const simpleReq = `{"id":"req-7","inputs":[
 {"name":"INPUT0","shape":[1,16],"datatype":"INT32","data":[[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]]},
 {"name":"INPUT1","shape":[1,16],"datatype":"INT32","data":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}]}`

// simple is the signature of Triton's "simple": INPUT0 and INPUT1, INT32
// [16], OUTPUT0 and OUTPUT1 alike, max_batch_size 8.
func simple() *backend.Signature {
	return &backend.Signature{Name: "simple", MaxBatchSize: 8,
		Inputs:  []backend.TensorSpec{{Name: "INPUT0", Datatype: "INT32", Dims: []int64{16}}, {Name: "INPUT1", Datatype: "INT32", Dims: []int64{16}}},
		Outputs: []backend.TensorSpec{{Name: "OUTPUT0", Datatype: "INT32", Dims: []int64{16}}, {Name: "OUTPUT1", Datatype: "INT32", Dims: []int64{16}}}}
}

// identity is the signature of a model with one input INPUT0 and one output
// OUTPUT0 of the given datatype and dims.
func identity(name, dt string, dims []int64, mbs int) *backend.Signature {
	return &backend.Signature{Name: name, MaxBatchSize: mbs,
		Inputs:  []backend.TensorSpec{{Name: "INPUT0", Datatype: dt, Dims: dims}},
		Outputs: []backend.TensorSpec{{Name: "OUTPUT0", Datatype: dt, Dims: dims}}}
}

// signatures are the models the framing fuzz target picks from.
var signatures = map[string]*backend.Signature{
	"simple":        simple(),
	"identity_fp32": identity("identity_fp32", "FP32", []int64{16}, 8),
	"strings":       identity("strings", "BYTES", []int64{1}, 0),
	"multi":         identity("multi", "FP32", []int64{-1, -1}, 0),
}
