package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"

	"github.com/ofaserve/ofaserve/backend"
)

// Key identifies an answer: a SHA-256 digest of what decides it (see the
// package doc).
type Key [sha256.Size]byte

// keyVersion starts every digest, so that a change to what is hashed never
// meets keys of the old layout.
const keyVersion = "ofaserve response cache key v1"

// KeyOf is the key of a validated request to load number load of a model
// version. numOutputs is the number of outputs the model declares: asking
// for all of them by name is the same as asking for none.
func KeyOf(model string, version int64, load uint64, req *backend.Request, numOutputs int) Key {
	h := sha256.New()
	var buf []byte
	str := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	flush := func() {
		h.Write(buf)
		buf = buf[:0]
	}
	str(keyVersion)
	str(model)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(version))
	buf = binary.LittleEndian.AppendUint64(buf, load)

	order := make([]int, len(req.Inputs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(req.Inputs[a].Name, req.Inputs[b].Name) })
	buf = binary.AppendUvarint(buf, uint64(len(order)))
	for _, i := range order {
		in := &req.Inputs[i]
		str(in.Name)
		str(in.Datatype)
		buf = binary.AppendUvarint(buf, uint64(len(in.Shape)))
		for _, d := range in.Shape {
			buf = binary.AppendVarint(buf, d)
		}
		buf = binary.AppendUvarint(buf, uint64(len(in.Data)))
		flush()
		h.Write(in.Data)
	}

	outs := slices.Clone(req.Outputs)
	slices.Sort(outs)
	outs = slices.Compact(outs)
	if len(outs) == numOutputs {
		outs = nil // all of them, named or not
	}
	buf = binary.AppendUvarint(buf, uint64(len(outs)))
	for _, o := range outs {
		str(o)
	}
	flush()
	var k Key
	h.Sum(k[:0])
	return k
}
