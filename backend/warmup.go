package backend

import "context"

// WarmupSample is one model_warmup entry of a model config (Triton's ModelWarmup) as a request: the
// repository builds Request from the entry's inputs (zeros, random data or a file of the model's warmup/
// folder, repeated batch_size times) and has validated it against the model's Signature.
type WarmupSample struct {
	Name    string
	Request *Request
	Count   int // times to run it, >= 1
}

// Warmer is implemented by a Model that warms itself up before it serves. The repository calls Warmup
// once, after the kind's Loader returned and before the version is READY, with the config's model_warmup
// samples (none when the config has none); the version becomes READY only if it returns nil. Warmup runs
// each sample Count times on every instance, in order, as Triton does, after whatever the kind warms by
// itself (the ofa kind: every batch × text-length bucket on every instance). Nothing else calls the
// model while Warmup runs. A Model that is not a Warmer gets its samples through Infer.
type Warmer interface {
	Warmup(ctx context.Context, samples []WarmupSample) error
}
