package libtorch

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
)

// TestBFloat16KeepsIntegerState loads the gather fixture (an int64 buffer that offsets int64 input ids for
// index_select over a float parameter, like the exported OFA module's answer ids) with Precision BFloat16.
// Converting the integer buffer or the ids input makes index_select raise; converting nothing would leave
// the float32 result. So: forward must succeed, match Python's bfloat16 run (nn.Module.to(dtype), which
// converts only floating tensors) within bfloat16's precision, have been computed in bfloat16, stay near
// the float32 run, and hand the ids back exactly as they went in.
func TestBFloat16KeepsIntegerState(t *testing.T) {
	idx := loadIndex(t)
	low, full := idx.Models["gather_bf16"], idx.Models["gather_bf16_f32"]
	if low.Precision != "bfloat16" || full.Precision != "float32" || len(low.Cases) != len(full.Cases) || len(low.Cases) == 0 {
		t.Fatalf("fixture index: gather_bf16 %s with %d cases, gather_bf16_f32 %s with %d cases",
			low.Precision, len(low.Cases), full.Precision, len(full.Cases))
	}
	m := fixtureModule(t, "gather", Options{Precision: BFloat16})
	m32 := fixtureModule(t, "gather", Options{})
	ctx := context.Background()
	for ci, c := range low.Cases {
		in := loadTensors(t, c.Inputs)
		if in[1].DType != Int64 {
			t.Fatalf("fixture input 1 is %v, want int64", in[1].DType)
		}
		idsBefore := bytes.Clone(in[1].Data)
		got, err := m.Forward(ctx, in)
		if err != nil {
			t.Fatalf("batch %d: %v", c.Batch, err)
		}
		if err := compareOutputsTol(got, loadTensors(t, c.Outputs), bf16Tol); err != nil {
			t.Errorf("batch %d against Python's bfloat16 run: %v", c.Batch, err)
		}
		if len(got) != 2 {
			continue
		}
		// Integer inputs pass untouched: the ids (2^40 and up, beyond any float type's exact range) come
		// back as int64 with every bit as sent, and the caller's buffer is unchanged.
		if got[1].DType != Int64 || !bytes.Equal(got[1].Data, idsBefore) || !bytes.Equal(in[1].Data, idsBefore) {
			t.Errorf("batch %d: ids came back as %v %v, want the int64 input unchanged", c.Batch, got[1].DType, got[1].Shape)
		}
		// The result was computed in bfloat16 and returned as float32: its low 16 bits are zero.
		if got[0].DType != Float32 {
			t.Fatalf("batch %d: output 0 is %v, want float32", c.Batch, got[0].DType)
		}
		for i := 0; i < int(got[0].NumElements()); i++ {
			if bits := binary.LittleEndian.Uint32(got[0].Data[4*i:]); bits&0xffff != 0 {
				t.Fatalf("batch %d: element %d (%#08x) is not a bfloat16 value: the module did not run in bfloat16", c.Batch, i, bits)
			}
		}
		// The same inputs in float32 give nearly the same answer (bfloat16 loses precision, not meaning).
		ref := full.Cases[ci]
		if !bytes.Equal(loadTensors(t, ref.Inputs)[0].Data, in[0].Data) {
			t.Fatalf("batch %d: gather_bf16 and gather_bf16_f32 fixtures have different inputs", c.Batch)
		}
		got32, err := m32.Forward(ctx, in)
		if err != nil {
			t.Fatalf("batch %d float32: %v", c.Batch, err)
		}
		if d := compareTensor(got[0], got32[0], tolerance{abs: 0.05, rel: 0.05}); d != "" {
			t.Errorf("batch %d: bfloat16 run far from the float32 run: %s", c.Batch, d)
		}
		if err := compareOutputs(got32, loadTensors(t, ref.Outputs)); err != nil {
			t.Errorf("batch %d float32 against Python: %v", c.Batch, err)
		}
	}
}
