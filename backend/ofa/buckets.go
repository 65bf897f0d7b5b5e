package ofa

import (
	"fmt"
	"strings"

	"github.com/ofaserve/ofaserve/bucket"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// Config parameters of the staged input path (models/README.md, "The ofa kind").
const (
	// ParamCUDAGraphs opts a model into CUDA graphs: "true" captures one graph per bucket at load on every
	// GPU instance and replays it for batches padded to that bucket (default "false": eager forwards).
	ParamCUDAGraphs = "cuda_graphs"
	// ParamBucketBatchSizes and ParamBucketTextLengths are the bucket grid (ascending lists, "1,2,4,8"):
	// the shapes graphs are captured for and warm-up runs.
	ParamBucketBatchSizes  = "bucket_batch_sizes"
	ParamBucketTextLengths = "bucket_text_lengths"
	// ParamWarmupBuckets "false" skips the kind's own warm-up of every bucket (default "true").
	ParamWarmupBuckets = "warmup_buckets"
)

// bucketConfig is what the config says about buckets, graphs and warm-up.
type bucketConfig struct {
	set         *bucket.Set
	graphs      bool
	warmBuckets bool
	maxBatch    int // rows a batch may hold
	maxRow      int // the longest id row the prompts make
}

// defaultBatchSizes are the powers of two below maxBatch, then maxBatch: 1,2,4,8,16 for 16.
func defaultBatchSizes(maxBatch int) []int {
	var out []int
	for b := 1; b < maxBatch; b *= 2 {
		out = append(out, b)
	}
	return append(out, maxBatch)
}

// defaultTextLengths are 32, 64, 128 where below maxRow, then maxRow: typical OFA prompts (a template
// of about ten ids and a sentence or two) fall in the first two, and nothing is longer than maxRow.
func defaultTextLengths(maxRow int) []int {
	var out []int
	for _, l := range []int{32, 64, 128} {
		if l < maxRow {
			out = append(out, l)
		}
	}
	return append(out, maxRow)
}

// readBuckets reads the bucket and graph parameters of cfg for a model whose batches hold up to maxBatch
// rows of at most maxRow ids.
func readBuckets(params map[string]*modelconfig.ModelParameter, maxBatch, maxRow int) (bucketConfig, error) {
	bc := bucketConfig{maxBatch: maxBatch, maxRow: maxRow, warmBuckets: true}
	var err error
	if bc.graphs, err = boolParam(params, ParamCUDAGraphs, false); err != nil {
		return bc, err
	}
	if bc.warmBuckets, err = boolParam(params, ParamWarmupBuckets, true); err != nil {
		return bc, err
	}
	batch, length := defaultBatchSizes(maxBatch), defaultTextLengths(maxRow)
	for _, p := range []struct {
		key   string
		dst   *[]int
		limit int
		what  string
	}{
		{ParamBucketBatchSizes, &batch, maxBatch, "max_batch_size"},
		{ParamBucketTextLengths, &length, maxRow, "the longest id row the model's prompts make"},
	} {
		v, ok := params[p.key]
		if !ok || strings.TrimSpace(v.GetStringValue()) == "" {
			continue
		}
		list, err := bucket.ParseList(v.GetStringValue())
		if err != nil {
			return bc, fmt.Errorf("parameter '%s': %w", p.key, err)
		}
		if last := list[len(list)-1]; last > p.limit {
			return bc, fmt.Errorf("parameter '%s': %d exceeds %s (%d)", p.key, last, p.what, p.limit)
		}
		*p.dst = list
	}
	if length[0] < 3 {
		return bc, fmt.Errorf("parameter '%s': %d is shorter than any prompt ([bos] + ids + [eos] holds at least 3)", ParamBucketTextLengths, length[0])
	}
	bc.set, err = bucket.New(batch, length)
	return bc, err
}

// boolParam reads an optional "true"/"false" parameter.
func boolParam(params map[string]*modelconfig.ModelParameter, key string, dflt bool) (bool, error) {
	p, ok := params[key]
	if !ok {
		return dflt, nil
	}
	switch strings.ToLower(strings.TrimSpace(p.GetStringValue())) {
	case "":
		return dflt, nil
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("parameter '%s': '%s' is not a boolean (want true or false)", key, p.GetStringValue())
}
