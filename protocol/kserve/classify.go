package kserve

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
)

// Classifiable reports whether outputs of datatype d can be classified:
// numbers can, BOOL, BYTES and the 16-bit floats cannot.
func Classifiable(d datatype.Type) bool {
	return d != datatype.Bool && d != datatype.Bytes && d != datatype.FP16 && d != datatype.BF16 && d != datatype.Invalid
}

// Classify turns a numeric output of the model of signature sig into the
// classification extension's BYTES tensor (docs/triton-batcher-and-kserve-v2.md §2.10): per batch item,
// the top k elements as "<value>:<index>[:<label>]", values printed as C++
// to_string would, labels from the output's label file.
func Classify(t backend.Tensor, k int64, sig *backend.Signature) (backend.Tensor, error) {
	d := datatype.Parse(t.Datatype)
	if !Classifiable(d) {
		return t, invalidArg("class result not available for output '%s' due to unsupported type '%s'", t.Name, t.Datatype)
	}
	count, variable, ok := datatype.ElementCount(t.Shape)
	if !ok || variable > 0 || count*int64(d.Size()) != int64(len(t.Data)) {
		return t, backend.Errorf(backend.CodeInternal, "output '%s' of model '%s' has %d bytes for shape %s", t.Name, sig.Name, len(t.Data), backend.FormatShape(t.Shape))
	}
	var labels []string
	for _, o := range sig.Outputs {
		if o.Name == t.Name {
			labels = o.Labels
		}
	}
	batch := int64(1)
	batched := sig.MaxBatchSize > 0 && len(t.Shape) > 0
	if batched {
		batch = t.Shape[0]
	}
	per := int64(0)
	if batch > 0 {
		per = count / batch
	}
	kk := min(k, per)
	var out []byte
	idx := make([]int, per)
	for b := range batch {
		base := int(b * per)
		for i := range idx {
			idx[i] = base + i
		}
		sort.SliceStable(idx, func(i, j int) bool { return elementFloat(d, t.Data, idx[i]) > elementFloat(d, t.Data, idx[j]) })
		for _, i := range idx[:kk] {
			var s []byte
			if d == datatype.FP32 || d == datatype.FP64 {
				s = fmt.Appendf(s, "%f", elementFloat(d, t.Data, i))
			} else {
				s = appendElementJSON(s, d, t.Data, i)
			}
			s = append(s, ':')
			s = strconv.AppendInt(s, int64(i-base), 10)
			if i-base < len(labels) {
				s = append(s, ':')
				s = append(s, labels[i-base]...)
			}
			out = datatype.AppendElement(out, s)
		}
	}
	shape := []int64{kk}
	if batched {
		shape = []int64{batch, kk}
	}
	return backend.Tensor{Name: t.Name, Datatype: "BYTES", Shape: shape, Data: out}, nil
}
