// Package bucket pads a batch to one of a few fixed shapes, so that a model instance can replay a CUDA
// graph captured for that shape instead of running forward eagerly (libtorch.Staging.CaptureGraph).
//
// A graph replays exactly the shapes it was captured for, so the shapes must be few: a Set is the grid of
// configured batch sizes × text lengths (OFA takes images of one size, so an image batch varies only in
// its row count). Pick returns the smallest bucket a batch of B rows of at most L token ids fits in:
// the first batch size >= B and the first length >= L. PadIDs lays the id rows out as that bucket's
// [Batch, Length] matrix, right-padding each row with the pad id and filling the rows the batch lacks
// with the pad id only; PadRows adds zero rows to a batch of images (or of any fixed-size rows). A batch
// beyond the largest bucket does not fit: it runs eagerly at its own shape.
//
// Padding is invisible in the real rows' results because the model treats every row on its own (no
// operation mixes rows of a batch) and masks pad ids; the package's tests check this on an exported OFA
// model for every bucket. (These are batch-shape buckets; OFA's relative-position buckets live in
// scripts/ofa/buckets.py.)
package bucket

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Shape is one bucket: Batch rows of Length token ids.
type Shape struct {
	Batch, Length int
}

func (s Shape) String() string { return fmt.Sprintf("%dx%d", s.Batch, s.Length) }

// Set is the grid of configured batch sizes × text lengths.
type Set struct {
	batch, length []int
}

// New returns the grid of batch sizes × lengths. Each list must hold positive, strictly ascending
// values (at most MaxSizes of them).
func New(batch, length []int) (*Set, error) {
	for _, l := range []struct {
		name string
		v    []int
	}{{"batch sizes", batch}, {"lengths", length}} {
		if err := checkList(l.v); err != nil {
			return nil, fmt.Errorf("bucket: %s: %w", l.name, err)
		}
	}
	return &Set{batch: append([]int(nil), batch...), length: append([]int(nil), length...)}, nil
}

// MaxSizes bounds each list: every bucket costs a graph capture at load and GPU memory.
const MaxSizes = 32

func checkList(v []int) error {
	if len(v) == 0 {
		return errors.New("empty list")
	}
	if len(v) > MaxSizes {
		return fmt.Errorf("%d values, at most %d", len(v), MaxSizes)
	}
	for i, x := range v {
		if x < 1 {
			return fmt.Errorf("value %d is below 1", x)
		}
		if i > 0 && x <= v[i-1] {
			return fmt.Errorf("%v is not strictly ascending", v)
		}
	}
	return nil
}

// ParseList reads a list of sizes written "1,2,4,8,16" (spaces allowed around the numbers), as a
// config.pbtxt parameter gives it; the values must be positive and strictly ascending.
func ParseList(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("bucket: empty list")
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxSizes {
		return nil, fmt.Errorf("bucket: %d values in %q, at most %d", len(parts), truncate(s), MaxSizes)
	}
	out := make([]int, 0, len(parts))
	for _, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v > 1<<20 {
			return nil, fmt.Errorf("bucket: %q in %q is not a size (want positive integers separated by commas)", truncate(strings.TrimSpace(p)), truncate(s))
		}
		out = append(out, v)
	}
	if err := checkList(out); err != nil {
		return nil, fmt.Errorf("bucket: %q: %w", truncate(s), err)
	}
	return out, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// BatchSizes returns the configured batch sizes.
func (s *Set) BatchSizes() []int { return append([]int(nil), s.batch...) }

// Lengths returns the configured text lengths.
func (s *Set) Lengths() []int { return append([]int(nil), s.length...) }

// Shapes returns every bucket, largest first: the order to capture graphs in, since the graphs of one
// instance share one memory pool, which the first capture sizes.
func (s *Set) Shapes() []Shape {
	out := make([]Shape, 0, len(s.batch)*len(s.length))
	for i := len(s.batch) - 1; i >= 0; i-- {
		for j := len(s.length) - 1; j >= 0; j-- {
			out = append(out, Shape{s.batch[i], s.length[j]})
		}
	}
	return out
}

// Pick returns the smallest bucket a batch of b rows (b >= 1) whose longest row has l ids fits in. ok is
// false when b or l exceeds the largest configured size.
func (s *Set) Pick(b, l int) (sh Shape, ok bool) {
	bi, bok := ceil(s.batch, b)
	li, lok := ceil(s.length, l)
	if !bok || !lok {
		return Shape{}, false
	}
	return Shape{bi, li}, true
}

// ceil returns the first value of the ascending list v that is >= x.
func ceil(v []int, x int) (int, bool) {
	for _, y := range v {
		if y >= x {
			return y, true
		}
	}
	return 0, false
}

// PadIDs lays rows out as the row-major [sh.Batch, sh.Length] int64 matrix of a bucket, in dst when its
// capacity allows (else new memory): row i holds rows[i] right-padded with pad; the rows from len(rows)
// on hold pad only. Every row must fit (len <= sh.Length) and so must the batch (len(rows) <= sh.Batch).
func PadIDs(dst []int64, rows [][]int64, sh Shape, pad int64) ([]int64, error) {
	if sh.Batch < 1 || sh.Length < 1 {
		return dst[:0], fmt.Errorf("bucket: invalid shape %v", sh)
	}
	if len(rows) > sh.Batch {
		return dst[:0], fmt.Errorf("bucket: %d rows do not fit bucket %v", len(rows), sh)
	}
	n := sh.Batch * sh.Length
	if cap(dst) < n {
		dst = make([]int64, n)
	}
	dst = dst[:n]
	for i := range sh.Batch {
		row := dst[i*sh.Length : (i+1)*sh.Length]
		k := 0
		if i < len(rows) {
			if len(rows[i]) > sh.Length {
				return dst[:0], fmt.Errorf("bucket: row %d has %d ids, bucket %v holds %d", i, len(rows[i]), sh, sh.Length)
			}
			k = copy(row, rows[i])
		}
		for j := k; j < len(row); j++ {
			row[j] = pad
		}
	}
	return dst, nil
}

// PadRows extends buf, which holds n rows of rowBytes bytes each (an image batch: rowBytes = 3*H*W for
// uint8 HWC images), to batch rows, zeroing the rows it adds; it reuses buf's capacity when it can.
func PadRows(buf []byte, n, rowBytes, batch int) ([]byte, error) {
	if n < 0 || rowBytes < 1 || batch < n || len(buf) != n*rowBytes {
		return buf, fmt.Errorf("bucket: cannot pad %d bytes as %d rows of %d bytes to %d rows", len(buf), n, rowBytes, batch)
	}
	want := batch * rowBytes
	if cap(buf) < want {
		grown := make([]byte, want)
		copy(grown, buf)
		return grown, nil
	}
	buf = buf[:want]
	clear(buf[n*rowBytes:])
	return buf, nil
}
