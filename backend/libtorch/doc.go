// Package libtorch is the model kind for raw TorchScript models: Triton's
// pytorch_libtorch platform (backend "pytorch"). A request carries the
// module's own tensors, checked against config.pbtxt by the repository
// (backend.Signature.Validate, Triton's messages) before the kind sees them;
// the kind adds only its own rules (absent optional inputs must be trailing
// forward arguments), queues them in a dynamic batcher, concatenates a batch's
// requests along dimension 0 (requests whose variable dimensions or optional
// inputs differ never share a batch), runs one forward on a free instance and
// splits every output back by each request's batch size. How config tensors
// bind to forward's arguments and results, the instance, precision and
// thread parameters are the contract written down in models/README.md ("The
// pytorch_libtorch kind").
package libtorch
