package chaos

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/ofaserve/ofaserve/bench/kserve"
)

// Env is what every case needs to know about the server under test.
type Env struct {
	Base     string // HTTP base URL, "http://127.0.0.1:PORT"
	HostPort string // its host:port, for raw connections
	GRPC     string // gRPC host:port ("" skips the gRPC case)
	PID      int    // server pid for RSS and SIGTERM (0: no RSS, no SIGTERM case)
	// ExitCodeFile is where the script writes the server's exit status once
	// it has exited (the SIGTERM case reads it).
	ExitCodeFile string

	Model       string // the image model, ofa_entailment
	CappedModel string // its copy with max_queue_size 8
	RawModel    string // ofa_entailment_raw

	HC *http.Client // shared client, many idle connections
	// Log receives progress lines (stderr); nil for none.
	Log func(format string, args ...any)
}

// NewHTTPClient returns a client that keeps up to conns idle connections to
// one host and gives up on a request after timeout.
func NewHTTPClient(conns int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

func (e *Env) logf(format string, args ...any) {
	if e.Log != nil {
		e.Log(format, args...)
	}
}

// Answer is what one HTTP exchange returned.
type Answer struct {
	Code    int // 0: no answer
	Body    []byte
	Header  http.Header
	Latency time.Duration
	Err     error // transport error, timeout, or a body that could not be read
}

// Class names the outcome for the notes: "200", "503", "timeout", "transport".
func (a *Answer) Class() string {
	if a.Code != 0 {
		return strconv.Itoa(a.Code)
	}
	var ne net.Error
	if errors.As(a.Err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(a.Err, context.Canceled) {
		return "cancelled"
	}
	return "transport"
}

// Post sends body to path with the given headers and reads the whole answer.
func (e *Env) Post(ctx context.Context, path string, body []byte, hdr map[string]string) Answer {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.Base+path, bytes.NewReader(body))
	if err != nil {
		return Answer{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.HC.Do(req)
	if err != nil {
		return Answer{Err: err, Latency: time.Since(start)}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	a := Answer{Code: resp.StatusCode, Body: b, Header: resp.Header, Latency: time.Since(start)}
	if err != nil {
		a.Code, a.Err = 0, fmt.Errorf("reading the answer: %w", err)
	}
	return a
}

// Get sends a GET to path.
func (e *Env) Get(ctx context.Context, path string) Answer {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.Base+path, nil)
	if err != nil {
		return Answer{Err: err}
	}
	resp, err := e.HC.Do(req)
	if err != nil {
		return Answer{Err: err, Latency: time.Since(start)}
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return Answer{Code: resp.StatusCode, Body: b, Header: resp.Header, Latency: time.Since(start)}
}

// Encoded is a request body ready to post many times.
type Encoded struct {
	Path   string
	Body   []byte
	Header map[string]string
}

// Encode prepares req for posting (binary extension when binary).
func Encode(req kserve.Request, binary bool) (Encoded, error) {
	body, hl, err := kserve.EncodeHTTP(req, binary)
	if err != nil {
		return Encoded{}, err
	}
	e := Encoded{Path: "/v2/models/" + req.Model + "/infer", Body: body, Header: map[string]string{}}
	if req.Version != "" {
		e.Path = "/v2/models/" + req.Model + "/versions/" + req.Version + "/infer"
	}
	if hl >= 0 {
		e.Header[kserve.HeaderLength] = strconv.Itoa(hl)
		e.Header["Content-Type"] = "application/octet-stream"
	}
	return e, nil
}

// Send posts an encoded request.
func (e *Env) Send(ctx context.Context, r Encoded) Answer {
	return e.Post(ctx, r.Path, r.Body, r.Header)
}

// OutputFloats decodes the named FP32 output of a 200 answer (binary or
// JSON data).
func OutputFloats(a *Answer, name string) ([]float32, error) {
	r, err := kserve.DecodeHTTPResponse(a.Body, a.Header.Get(kserve.HeaderLength))
	if err != nil {
		return nil, err
	}
	for _, o := range r.Outputs {
		if o.Name != name {
			continue
		}
		if o.Raw != nil {
			if len(o.Raw)%4 != 0 {
				return nil, fmt.Errorf("output %s: %d bytes is not FP32", name, len(o.Raw))
			}
			out := make([]float32, len(o.Raw)/4)
			for i := range out {
				out[i] = math.Float32frombits(binary.LittleEndian.Uint32(o.Raw[4*i:]))
			}
			return out, nil
		}
		var v []float32
		if err := jsonUnmarshal(o.Data, &v); err != nil {
			return nil, fmt.Errorf("output %s: %w", name, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("answer has no output %s", name)
}

// Close enough: two logit vectors agree within tol (absolute, plus relative
// to the larger magnitude), as a batch's float order may differ from a lone
// request's.
func Close(a, b []float32, tol float64) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if d > tol*(1+math.Max(math.Abs(float64(a[i])), math.Abs(float64(b[i])))) {
			return false
		}
	}
	return true
}

// CheckAnswer decodes a 200 answer and checks it carries outputs.
func CheckAnswer(a *Answer) error {
	r, err := kserve.DecodeHTTPResponse(a.Body, a.Header.Get(kserve.HeaderLength))
	if err != nil {
		return err
	}
	if len(r.Outputs) == 0 {
		return fmt.Errorf("answer has no outputs")
	}
	return nil
}
