package tracing

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
)

// tensor is one traced tensor, already rendered as the trace file writes it.
type tensor struct {
	activity, name, data, shape, dtype string
}

// Tensor records a tensor at the TENSORS level (activity TensorQueueInput for an input as it is queued,
// TensorBackendOutput for an output the model produced): its data row-major and little-endian as the
// protocol carries it, BYTES as 4-byte-length-prefixed elements. The data is written as comma-separated
// values ("0.5,1,2"; BYTES elements as text), the shape as "1,16".
func (tr *Trace) Tensor(activity, name, datatype string, shape []int64, data []byte) {
	if tr.level&Tensors == 0 {
		return
	}
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.FormatInt(d, 10)
	}
	x := tensor{activity: activity, name: name, data: FormatData(datatype, data), shape: strings.Join(dims, ","), dtype: datatype}
	tr.mu.Lock()
	if !tr.done {
		tr.tensors = append(tr.tensors, x)
	}
	tr.mu.Unlock()
}

// FormatData renders tensor data of a protocol datatype as comma-separated values. Trailing bytes that do
// not make a whole element, and a BYTES element whose length runs past the data, are left out.
func FormatData(datatype string, data []byte) string {
	var b strings.Builder
	n := 0
	sep := func() {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
	}
	if datatype == "BYTES" {
		for len(data) >= 4 {
			size := binary.LittleEndian.Uint32(data)
			if uint64(size) > uint64(len(data)-4) {
				break
			}
			sep()
			b.Write(data[4 : 4+size])
			data = data[4+size:]
		}
		return b.String()
	}
	size, format := elementFormat(datatype)
	if size == 0 {
		return ""
	}
	var num []byte
	for ; len(data) >= size; data = data[size:] {
		sep()
		num = format(num[:0], data[:size])
		b.Write(num)
	}
	return b.String()
}

func elementFormat(datatype string) (int, func([]byte, []byte) []byte) {
	le := binary.LittleEndian
	float := func(bits int) func([]byte, float64) []byte {
		return func(dst []byte, v float64) []byte { return strconv.AppendFloat(dst, v, 'g', -1, bits) }
	}
	f32, f64 := float(32), float(64)
	switch datatype {
	case "BOOL":
		return 1, func(d, e []byte) []byte { return strconv.AppendBool(d, e[0] != 0) }
	case "UINT8":
		return 1, func(d, e []byte) []byte { return strconv.AppendUint(d, uint64(e[0]), 10) }
	case "INT8":
		return 1, func(d, e []byte) []byte { return strconv.AppendInt(d, int64(int8(e[0])), 10) }
	case "UINT16":
		return 2, func(d, e []byte) []byte { return strconv.AppendUint(d, uint64(le.Uint16(e)), 10) }
	case "INT16":
		return 2, func(d, e []byte) []byte { return strconv.AppendInt(d, int64(int16(le.Uint16(e))), 10) }
	case "UINT32":
		return 4, func(d, e []byte) []byte { return strconv.AppendUint(d, uint64(le.Uint32(e)), 10) }
	case "INT32":
		return 4, func(d, e []byte) []byte { return strconv.AppendInt(d, int64(int32(le.Uint32(e))), 10) }
	case "UINT64":
		return 8, func(d, e []byte) []byte { return strconv.AppendUint(d, le.Uint64(e), 10) }
	case "INT64":
		return 8, func(d, e []byte) []byte { return strconv.AppendInt(d, int64(le.Uint64(e)), 10) }
	case "FP16":
		return 2, func(d, e []byte) []byte { return f32(d, float64(half(le.Uint16(e)))) }
	case "BF16":
		return 2, func(d, e []byte) []byte { return f32(d, float64(math.Float32frombits(uint32(le.Uint16(e))<<16))) }
	case "FP32":
		return 4, func(d, e []byte) []byte { return f32(d, float64(math.Float32frombits(le.Uint32(e)))) }
	case "FP64":
		return 8, func(d, e []byte) []byte { return f64(d, math.Float64frombits(le.Uint64(e))) }
	}
	return 0, nil
}

// half converts an IEEE 754 binary16 value to float32.
func half(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf, nan
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: frac * 2^-24
		v := float32(frac) / (1 << 24)
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}
