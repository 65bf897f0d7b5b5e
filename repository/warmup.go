package repository

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// This file is Triton's model_warmup: each sample of the config is a request the model runs on every
// instance, in order, before the version is READY (models/README.md, "Warm-up"). Its inputs are zeros,
// random values, or a file of the model folder's warmup/ sub-folder, and it is repeated batch_size times.

// WarmupDir is the sub-folder of a model folder that holds the input_data_file files of model_warmup.
const WarmupDir = "warmup"

// checkWarmup checks the config's model_warmup samples against its inputs (a config error names the
// sample); the data itself is read at load.
func checkWarmup(cfg *modelconfig.ModelConfig, bad badFunc) error {
	inputs := map[string]*modelconfig.ModelInput{}
	for _, in := range cfg.Input {
		inputs[in.Name] = in
	}
	for i, w := range cfg.ModelWarmup {
		field := fmt.Sprintf("model_warmup[%d]", i)
		name := w.Name
		if name == "" {
			return bad(field+".name", "a warm-up sample must have a name")
		}
		switch {
		case w.BatchSize < 1:
			return bad(field+".batch_size", "warm-up sample '%s': batch_size must be at least 1", name)
		case cfg.MaxBatchSize == 0 && w.BatchSize != 1:
			return bad(field+".batch_size", "warm-up sample '%s': batch_size must be 1 for a model that does not batch (max_batch_size 0), got %d", name, w.BatchSize)
		case cfg.MaxBatchSize > 0 && int32(w.BatchSize) > cfg.MaxBatchSize:
			return bad(field+".batch_size", "warm-up sample '%s': batch_size %d exceeds max_batch_size %d", name, w.BatchSize, cfg.MaxBatchSize)
		}
		for _, in := range cfg.Input {
			if _, ok := w.Inputs[in.Name]; !ok && !in.Optional {
				return bad(field+".inputs", "warm-up sample '%s' lacks input '%s'", name, in.Name)
			}
		}
		keys := make([]string, 0, len(w.Inputs))
		for k := range w.Inputs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			wi, in := w.Inputs[k], inputs[k]
			if in == nil {
				return bad(field+".inputs", "warm-up sample '%s': '%s' is not an input of the model", name, k)
			}
			if wi.DataType != in.DataType {
				return bad(field+".inputs", "warm-up sample '%s': input '%s' is %s, the model's is %s", name, k, wi.DataType, in.DataType)
			}
			n, variable, ok := datatype.ElementCount(wi.Dims)
			if !ok || variable > 0 || n > 1<<28 {
				return bad(field+".inputs", "warm-up sample '%s': input '%s' dims %v must be fully specified (no -1)", name, k, wi.Dims)
			}
			switch d := wi.InputDataType.(type) {
			case nil:
				return bad(field+".inputs", "warm-up sample '%s': input '%s' sets none of zero_data, random_data, input_data_file", name, k)
			case *modelconfig.ModelWarmup_Input_InputDataFile:
				if f := d.InputDataFile; f == "" || strings.ContainsAny(f, `/\`) || f == "." || f == ".." {
					return bad(field+".inputs", "warm-up sample '%s': input '%s' input_data_file '%s' must be a plain file name (in the model's %s/ folder)", name, k, f, WarmupDir)
				}
			}
		}
	}
	return nil
}

// warmupSamples builds the model_warmup samples of a normalized config as requests validated against sig.
func warmupSamples(dir string, cfg *modelconfig.ModelConfig, sig backend.Signature) ([]backend.WarmupSample, error) {
	var out []backend.WarmupSample
	for i, w := range cfg.ModelWarmup {
		req := &backend.Request{ID: "warmup-" + w.Name}
		keys := make([]string, 0, len(w.Inputs))
		for k := range w.Inputs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			t, err := warmupTensor(dir, k, w.Inputs[k], int(w.BatchSize), cfg.MaxBatchSize > 0, uint64(i))
			if err != nil {
				return nil, fmt.Errorf("warm-up sample '%s': %w", w.Name, err)
			}
			req.Inputs = append(req.Inputs, t)
		}
		if err := sig.Validate(req); err != nil {
			return nil, fmt.Errorf("warm-up sample '%s': %w", w.Name, err)
		}
		out = append(out, backend.WarmupSample{Name: w.Name, Request: req, Count: max(1, int(w.Count))})
	}
	return out, nil
}

// warmupTensor makes one input of a sample: one batch element's data (zeros, random values seeded by
// the sample's index, or the file), repeated batch times.
func warmupTensor(dir, name string, wi *modelconfig.ModelWarmup_Input, batch int, batching bool, seed uint64) (backend.Tensor, error) {
	dt := datatype.FromConfig(wi.DataType.String())
	t := backend.Tensor{Name: name, Datatype: dt.String()}
	if batching {
		t.Shape = append([]int64{int64(batch)}, wi.Dims...)
	} else {
		t.Shape = slices.Clone(wi.Dims)
	}
	n, _, _ := datatype.ElementCount(wi.Dims)
	var elem []byte
	switch d := wi.InputDataType.(type) {
	case *modelconfig.ModelWarmup_Input_InputDataFile:
		file := filepath.Join(dir, WarmupDir, d.InputDataFile)
		data, err := os.ReadFile(file)
		if err != nil {
			return t, fmt.Errorf("input '%s': %w", name, err)
		}
		if err := checkElementData(data, dt, n); err != nil {
			return t, fmt.Errorf("input '%s': %s: %w", name, file, err)
		}
		elem = data
	case *modelconfig.ModelWarmup_Input_RandomData:
		if dt != datatype.Bytes { // Triton: random TYPE_STRING data is zero data
			elem = randomData(dt, n, rand.New(rand.NewPCG(seed, uint64(len(name)))))
		}
	}
	if elem == nil { // zero_data
		if dt == datatype.Bytes {
			elem = make([]byte, 4*n) // n empty strings
		} else {
			elem = make([]byte, int(n)*dt.Size())
		}
	}
	t.Data = make([]byte, 0, batch*len(elem))
	for range batch {
		t.Data = append(t.Data, elem...)
	}
	return t, nil
}

// checkElementData checks that data holds exactly n elements of dt (BYTES: 4-byte length-prefixed).
func checkElementData(data []byte, dt datatype.Type, n int64) error {
	if dt != datatype.Bytes {
		if want := n * int64(dt.Size()); int64(len(data)) != want {
			return fmt.Errorf("%d bytes, want %d (%d %s elements)", len(data), want, n, dt)
		}
		return nil
	}
	count := int64(0)
	for _, err := range datatype.Elements(data) {
		if err != nil {
			return fmt.Errorf("not %d length-prefixed elements: %w", n, err)
		}
		count++
	}
	if count != n {
		return fmt.Errorf("%d length-prefixed elements, want %d", count, n)
	}
	return nil
}

// randomData makes n random elements of dt: floats in [0, 1) (FP16 in [0.5, 1)), integers in 0..127
// (valid for every integer type and small enough for index inputs), booleans 0 or 1.
func randomData(dt datatype.Type, n int64, rng *rand.Rand) []byte {
	size := dt.Size()
	out := make([]byte, int(n)*size)
	for i := range int(n) {
		b := out[i*size : (i+1)*size]
		switch dt {
		case datatype.Bool:
			b[0] = byte(rng.IntN(2))
		case datatype.FP32:
			binary.LittleEndian.PutUint32(b, math.Float32bits(rng.Float32()))
		case datatype.FP64:
			binary.LittleEndian.PutUint64(b, math.Float64bits(rng.Float64()))
		case datatype.BF16:
			binary.LittleEndian.PutUint16(b, uint16(math.Float32bits(rng.Float32())>>16))
		case datatype.FP16:
			binary.LittleEndian.PutUint16(b, 0x3800|uint16(rng.IntN(1024))) // exponent -1: [0.5, 1)
		default: // integers, little-endian
			v := uint64(rng.IntN(128))
			for k := range b {
				b[k] = byte(v >> (8 * k))
			}
		}
	}
	return out
}

// warmup runs the samples on a loaded model before it is READY: through its Warmup when it is a
// backend.Warmer (every instance, plus what the kind warms by itself), else each sample Count times
// through Infer.
func warmup(ctx context.Context, impl backend.Model, samples []backend.WarmupSample) (time.Duration, error) {
	start := time.Now()
	if w, ok := impl.(backend.Warmer); ok {
		err := w.Warmup(ctx, samples)
		return time.Since(start), err
	}
	for _, s := range samples {
		for k := range s.Count {
			if _, err := impl.Infer(ctx, s.Request); err != nil {
				return time.Since(start), fmt.Errorf("warm-up sample '%s' (run %d of %d): %w", s.Name, k+1, s.Count, err)
			}
		}
	}
	return time.Since(start), nil
}
