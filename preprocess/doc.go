// Package preprocess turns an encoded image (JPEG, PNG, WebP, BMP, GIF) into the
// normalized CHW float32 tensor a vision model wants, computing exactly what
// Python's PIL + torchvision pipeline computes:
//
//	Image.open(f) -> ImageOps.exif_transpose -> convert("RGB")
//	  -> resize((W, H), Image.BICUBIC) -> ToTensor() -> Normalize(mean, std)
//
// Every step is bit-exact with Pillow 9.x and torchvision (see the repository's
// docs/pil-preprocessing.md): JPEG is decoded by libjpeg-turbo through
// its TurboJPEG API with the same settings PIL uses (accurate integer IDCT,
// fancy chroma upsampling, Adobe CMYK inversion); the other formats go through
// Go's image packages and are then converted to RGB with PIL's per-mode rules;
// the EXIF orientation is applied as PIL's exif_transpose; the resampler is
// PIL's two-pass fixed-point bicubic, its weights computed in Go and its passes
// run in C (resample.c: the same integer sums on every CPU, two rows at a time
// with AVX2 where the CPU has it: 2-4x the speed of the Go loops it replaced,
// 2-3x Pillow 9.4's); and the normalization uses torchvision's float32
// arithmetic.
//
// The model:
//
//   - DecodeRGB checks the input against Limits (encoded size, pixel count read
//     from the header before anything is allocated, format allow-list), decodes
//     it, applies the EXIF orientation and returns 8-bit packed RGB.
//   - (*RGB).Resize resamples with PIL's bicubic filter.
//   - ToCHW normalizes 8-bit RGB into a CHW float32 tensor.
//   - Prepare does all of it in one call, reusing internal buffers and
//     normalizing each resized row as it is handed over; it is what a server
//     calls per request.
//   - PrepareUint8 is Prepare stopping before the normalization: the resized
//     8-bit RGB image in HWC order, a quarter of the bytes, for a device that
//     normalizes it itself (libtorch.Staging's image inputs compute the same
//     float32 values on the device).
//
// All functions are safe for concurrent use. Errors wrap one of ErrEmpty,
// ErrTooLarge, ErrUnsupported or ErrCorrupt and name what was wrong; garbage
// input never panics. The package keeps no state between calls except
// sync.Pool buffer caches, which have no observable effect.
package preprocess
