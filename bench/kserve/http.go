package kserve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"time"
)

// Outcome is what one inference request ended with, as the load generator
// records it.
type Outcome struct {
	// Status is "" for success, otherwise a short class used to count errors:
	// "HTTP 503", "gRPC Unavailable", "timeout", "transport".
	Status string
	// Send is the client time spent sending the request (HTTP: until the
	// body was written; gRPC: marshalling), Recv the time spent receiving and
	// decoding the response after its first byte.
	Send, Recv time.Duration
	Err        error
}

// HTTPClient speaks the KServe v2 HTTP protocol to one server.
type HTTPClient struct {
	base string
	hc   *http.Client
}

// NewHTTPClient returns a client for baseURL (for example
// "http://127.0.0.1:8000") keeping up to maxConns idle connections, so that
// a closed loop of maxConns workers never reconnects. timeout bounds each
// request (0: none beyond the context).
func NewHTTPClient(baseURL string, maxConns int, timeout time.Duration) *HTTPClient {
	if maxConns < 1 {
		maxConns = 1
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &HTTPClient{base: baseURL, hc: &http.Client{Transport: tr, Timeout: timeout}}
}

// Close drops idle connections.
func (c *HTTPClient) Close() { c.hc.CloseIdleConnections() }

// PreparedHTTP is a request encoded once and sent many times.
type PreparedHTTP struct {
	path      string
	body      []byte
	headerLen int
}

// Body returns the encoded body and the Inference-Header-Content-Length
// value (-1: not sent).
func (p *PreparedHTTP) Body() ([]byte, int) { return p.body, p.headerLen }

func modelPath(model, version string) string {
	p := "/v2/models/" + url.PathEscape(model)
	if version != "" {
		p += "/versions/" + url.PathEscape(version)
	}
	return p
}

// Prepare encodes req for repeated sending.
func (c *HTTPClient) Prepare(req Request, binaryInputs bool) (*PreparedHTTP, error) {
	body, hl, err := EncodeHTTP(req, binaryInputs)
	if err != nil {
		return nil, err
	}
	return &PreparedHTTP{path: modelPath(req.Model, req.Version) + "/infer", body: body, headerLen: hl}, nil
}

// Infer sends one prepared request and reads and decodes the whole response.
func (c *HTTPClient) Infer(ctx context.Context, p *PreparedHTTP) Outcome {
	start := time.Now()
	var wrote, firstByte time.Time
	trace := &httptrace.ClientTrace{
		WroteRequest:         func(httptrace.WroteRequestInfo) { wrote = time.Now() },
		GotFirstResponseByte: func() { firstByte = time.Now() },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, c.base+p.path, bytes.NewReader(p.body))
	if err != nil {
		return Outcome{Status: "transport", Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if p.headerLen >= 0 {
		req.Header.Set(HeaderLength, strconv.Itoa(p.headerLen))
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return Outcome{Status: classify(ctx, err), Err: err}
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return Outcome{Status: classify(ctx, err), Err: err}
	}
	var o Outcome
	if !wrote.IsZero() {
		o.Send = wrote.Sub(start)
	}
	if resp.StatusCode != http.StatusOK {
		var eb ErrorBody
		_ = json.Unmarshal(body, &eb)
		o.Status = "HTTP " + strconv.Itoa(resp.StatusCode)
		o.Err = fmt.Errorf("%s: %s", resp.Status, eb.Error)
	} else if _, err := DecodeHTTPResponse(body, resp.Header.Get(HeaderLength)); err != nil {
		o.Status, o.Err = "bad response", err
	}
	if !firstByte.IsZero() {
		o.Recv = time.Since(firstByte)
	}
	return o
}

func classify(ctx context.Context, err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	if ctx.Err() != nil {
		return "cancelled"
	}
	return "transport"
}

func (c *HTTPClient) getJSON(ctx context.Context, path string, v any) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb ErrorBody
		_ = json.Unmarshal(body, &eb)
		return nil, fmt.Errorf("GET %s: %s %s", path, resp.Status, eb.Error)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return nil, fmt.Errorf("GET %s: decoding: %w", path, err)
		}
	}
	return body, nil
}

// Metadata returns the model's metadata.
func (c *HTTPClient) Metadata(ctx context.Context, model, version string) (ModelMetadata, error) {
	var m ModelMetadata
	_, err := c.getJSON(ctx, modelPath(model, version), &m)
	return m, err
}

// Config returns the model's configuration (the fields the harness uses).
func (c *HTTPClient) Config(ctx context.Context, model, version string) (ModelConfig, error) {
	var m ModelConfig
	_, err := c.getJSON(ctx, modelPath(model, version)+"/config", &m)
	return m, err
}

// Stats returns the model's statistics entry.
func (c *HTTPClient) Stats(ctx context.Context, model, version string) (ModelStats, error) {
	body, err := c.getJSON(ctx, modelPath(model, version)+"/stats", nil)
	if err != nil {
		return ModelStats{}, err
	}
	return ParseStats(body, model, version)
}

// WaitReady polls /v2/models/{m}/ready until it answers 200 or ctx ends.
func (c *HTTPClient) WaitReady(ctx context.Context, model string) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+modelPath(model, "")+"/ready", nil)
		if err != nil {
			return err
		}
		resp, err := c.hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("model %q not ready at %s: %w", model, c.base, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
