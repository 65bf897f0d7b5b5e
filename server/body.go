package server

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/ofaserve/ofaserve/backend"
)

// bufPool recycles request and response buffers of the hot path. A buffer
// whose bytes a model may still reference (the request failed, so the model
// may not be done with it) is never returned.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// bytesPool recycles response encoding buffers.
var bytesPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBytes() *[]byte { return bytesPool.Get().(*[]byte) }

// putBytes returns p to the pool holding b, the (possibly grown) slice
// encoded into it.
func putBytes(p *[]byte, b []byte) {
	if cap(b) > 4<<20 {
		return
	}
	*p = b[:0]
	bytesPool.Put(p)
}

func getBuf() *bytes.Buffer { return bufPool.Get().(*bytes.Buffer) }

func putBuf(b *bytes.Buffer) {
	if b.Cap() > 4<<20 { // do not pin huge buffers
		return
	}
	b.Reset()
	bufPool.Put(b)
}

// readBody reads the (decompressed) request body into buf, capped at limit
// bytes before and after decompression (docs/triton-batcher-and-kserve-v2.md §2.7).
func readBody(r *http.Request, buf *bytes.Buffer, limit int64) error {
	var src io.Reader = r.Body
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch enc {
	case "", "identity":
		if r.ContentLength > limit {
			return tooLarge(r.ContentLength, limit)
		}
		if r.ContentLength > 0 {
			buf.Grow(int(r.ContentLength))
		}
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(io.LimitReader(r.Body, limit+1))
		if err != nil {
			return invalidArg("failed to decompress gzip request body: %v", err)
		}
		defer zr.Close()
		src = zr
	case "deflate":
		// HTTP's deflate is zlib-wrapped (RFC 9110); raw deflate streams
		// are accepted too, as some clients send them.
		br := bufio.NewReader(io.LimitReader(r.Body, limit+1))
		if hdr, err := br.Peek(2); err == nil && (uint16(hdr[0])<<8|uint16(hdr[1]))%31 == 0 && hdr[0]&0x0f == 8 {
			zr, err := zlib.NewReader(br)
			if err != nil {
				return invalidArg("failed to decompress deflate request body: %v", err)
			}
			defer zr.Close()
			src = zr
		} else {
			zr := flate.NewReader(br)
			defer zr.Close()
			src = zr
		}
	default:
		return withStatus(http.StatusUnsupportedMediaType, backend.Errorf(backend.CodeUnsupported,
			"unsupported Content-Encoding '%s': supported are identity, gzip, x-gzip and deflate", enc))
	}
	n, err := buf.ReadFrom(io.LimitReader(src, limit+1))
	if err != nil {
		if enc == "" || enc == "identity" {
			return invalidArg("failed to read request body: %v", err)
		}
		return invalidArg("failed to decompress %s request body: %v", enc, err)
	}
	if n > limit {
		return tooLarge(n, limit)
	}
	return nil
}

func tooLarge(n, limit int64) error {
	return withStatus(http.StatusRequestEntityTooLarge,
		invalidArg("request size of %d bytes exceeds the maximum allowed input size of %d bytes (--http-max-input-size)", n, limit))
}

// acceptEncoding picks the response compression from Accept-Encoding: the
// highest-weighted of identity, deflate and gzip; malformed entries are
// skipped (docs/triton-batcher-and-kserve-v2.md §2.7). It returns "" for identity.
func acceptEncoding(h string) string {
	if h == "" {
		return ""
	}
	best, bestQ := "", -1.0
	for part := range strings.SplitSeq(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		q := 1.0
		if params != "" {
			k, v, ok := strings.Cut(strings.TrimSpace(params), "=")
			if !ok || strings.TrimSpace(k) != "q" {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
		}
		switch name {
		case "identity", "gzip", "deflate":
		default:
			continue
		}
		if q > bestQ {
			best, bestQ = name, q
		}
	}
	if best == "identity" || bestQ <= 0 {
		return ""
	}
	return best
}

// Compressors are pooled: a fresh gzip or zlib writer allocates hundreds of
// kilobytes of state.
var (
	gzipPool = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}
	zlibPool = sync.Pool{New: func() any { return zlib.NewWriter(nil) }}
)

type resetWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

// compress returns body compressed with enc into a new buffer, or nil if
// compression failed (the response then goes out uncompressed).
func compress(enc string, body []byte) *bytes.Buffer {
	var pool *sync.Pool
	switch enc {
	case "gzip":
		pool = &gzipPool
	case "deflate":
		pool = &zlibPool
	default:
		return nil
	}
	w := pool.Get().(resetWriter)
	defer pool.Put(w)
	out := getBuf()
	w.Reset(out)
	if _, err := w.Write(body); err != nil {
		putBuf(out)
		return nil
	}
	if err := w.Close(); err != nil {
		putBuf(out)
		return nil
	}
	return out
}
