package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

// BenchmarkOverhead measures what the server adds per request on top of the
// transport: an FP32[16] identity model (in-process fake, so only the
// frontend is measured) against a bare handler that returns the same bytes,
// both on 127.0.0.1 in the same run, requests interleaved. It reports the
// p50 latency of each and "added-p50-us", their difference.
//
//	go test -run '^$' -bench Overhead -benchtime 4000x ./server/
func BenchmarkOverhead(b *testing.B) {
	repo := &fakeRepo{}
	repo.add(identityModel("identity", "FP32", []int64{16}, 8))
	s, err := New(Options{}, repo, nil)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s.HTTPHandler())
	defer srv.Close()

	vals := make([]float32, 16)
	for i := range vals {
		vals[i] = float32(i) * 0.25
	}
	jsonReq := []byte(`{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","data":[0,0.25,0.5,0.75,1,1.25,1.5,1.75,2,2.25,2.5,2.75,3,3.25,3.5,3.75]}]}`)
	binHdr := `{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","parameters":{"binary_data_size":64}}],"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}}]}`
	binReq := append([]byte(binHdr), f32bytes(vals)...)

	// The bare baselines answer with the bytes ofaserve answers with.
	// No Accept-Encoding: the baseline does not compress either.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	jsonResp := post(b, client, srv.URL+"/v2/models/identity/infer", jsonReq, "")
	binResp := post(b, client, srv.URL+"/v2/models/identity/infer", binReq, strconv.Itoa(len(binHdr)))
	bare := func(resp []byte, binary bool) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			if binary {
				w.Header().Set("Content-Type", "application/octet-stream")
				w.Header().Set("Inference-Header-Content-Length", "100")
			} else {
				w.Header().Set("Content-Type", "application/json")
			}
			_, _ = w.Write(resp)
		}))
	}
	bareJSON, bareBin := bare(jsonResp, false), bare(binResp, true)
	defer bareJSON.Close()
	defer bareBin.Close()

	// gRPC: ofaserve's service, and a bare service answering a prebuilt response.
	gconn, gstop := serveGRPC(b, s.GRPCServer())
	defer gstop()
	gReq := &pb.ModelInferRequest{ModelName: "identity",
		Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "INPUT0", Datatype: "FP32", Shape: []int64{1, 16}}},
		RawInputContents: [][]byte{f32bytes(vals)}}
	gc := pb.NewGRPCInferenceServiceClient(gconn)
	gResp, err := gc.ModelInfer(context.Background(), gReq)
	if err != nil {
		b.Fatal(err)
	}
	bareG := grpc.NewServer()
	pb.RegisterGRPCInferenceServiceServer(bareG, bareService{resp: gResp})
	bconn, bstop := serveGRPC(b, bareG)
	defer bstop()
	bc := pb.NewGRPCInferenceServiceClient(bconn)

	httpCall := func(url string, body []byte, hl string) func() error {
		return func() error {
			post(b, client, url, body, hl)
			return nil
		}
	}
	grpcCall := func(c pb.GRPCInferenceServiceClient) func() error {
		return func() error {
			_, err := c.ModelInfer(context.Background(), gReq)
			return err
		}
	}
	for _, tc := range []struct {
		name           string
		target, ground func() error
	}{
		{"http-json", httpCall(srv.URL+"/v2/models/identity/infer", jsonReq, ""), httpCall(bareJSON.URL, jsonReq, "")},
		{"http-binary", httpCall(srv.URL+"/v2/models/identity/infer", binReq, strconv.Itoa(len(binHdr))), httpCall(bareBin.URL, binReq, strconv.Itoa(len(binHdr)))},
		{"grpc", grpcCall(gc), grpcCall(bc)},
	} {
		for _, conc := range []int{1, 16} {
			b.Run(tc.name+"/c"+strconv.Itoa(conc), func(b *testing.B) {
				// b.N units of one request to each; chunks alternate between
				// the baseline and ofaserve so drift hits both alike.
				n := b.N
				var target, ground []time.Duration
				const chunk = 200
				for done := 0; done < n; done += chunk {
					k := min(chunk, n-done)
					ground = append(ground, load(b, conc, k, tc.ground)...)
					target = append(target, load(b, conc, k, tc.target)...)
				}
				pt, pg := p50(target), p50(ground)
				b.ReportMetric(float64(pt.Nanoseconds())/1e3, "ofaserve-p50-us")
				b.ReportMetric(float64(pg.Nanoseconds())/1e3, "bare-p50-us")
				b.ReportMetric(float64((pt-pg).Nanoseconds())/1e3, "added-p50-us")
			})
		}
	}
}

// load runs n calls of f from conc goroutines and returns their latencies.
func load(b *testing.B, conc, n int, f func() error) []time.Duration {
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range conc {
		wg.Go(func() {
			for i := range next {
				t0 := time.Now()
				if err := f(); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	return lat
}

func p50(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func post(b *testing.B, c *http.Client, url string, body []byte, hl string) []byte {
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	if hl != "" {
		req.Header.Set("Inference-Header-Content-Length", hl)
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("%s: %d %s %v", url, resp.StatusCode, out, err)
	}
	return out
}

func serveGRPC(b *testing.B, g *grpc.Server) (*grpc.ClientConn, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	return conn, func() { conn.Close(); g.Stop() }
}

// bareService answers ModelInfer with a fixed response: the gRPC baseline.
type bareService struct {
	pb.UnimplementedGRPCInferenceServiceServer
	resp *pb.ModelInferResponse
}

func (s bareService) ModelInfer(context.Context, *pb.ModelInferRequest) (*pb.ModelInferResponse, error) {
	return s.resp, nil
}

// discardWriter is an http.ResponseWriter that keeps nothing, so
// BenchmarkInferHandler measures the handler alone.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// BenchmarkInferHandler is the server's CPU and allocations per inference
// request without a network: the HTTP handler (router, body read, envelope
// decode, validation, response encode) serving the FP32[16] identity model
// of BenchmarkOverhead, on one goroutine.
//
//	go test -run '^$' -bench InferHandler -benchmem ./server/
func BenchmarkInferHandler(b *testing.B) {
	repo := &fakeRepo{}
	repo.add(identityModel("identity", "FP32", []int64{16}, 8))
	s, err := New(Options{}, repo, nil)
	if err != nil {
		b.Fatal(err)
	}
	h := s.HTTPHandler()
	vals := make([]float32, 16)
	for i := range vals {
		vals[i] = float32(i) * 0.25
	}
	jsonReq := []byte(`{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","data":[0,0.25,0.5,0.75,1,1.25,1.5,1.75,2,2.25,2.5,2.75,3,3.25,3.5,3.75]}]}`)
	binHdr := `{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","parameters":{"binary_data_size":64}}],"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}}]}`
	binReq := append([]byte(binHdr), f32bytes(vals)...)
	for _, tc := range []struct {
		name string
		body []byte
		hl   string
	}{{"json", jsonReq, ""}, {"binary", binReq, strconv.Itoa(len(binHdr))}} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest("POST", "/v2/models/identity/infer", nil)
			if tc.hl != "" {
				req.Header.Set("Inference-Header-Content-Length", tc.hl)
			}
			body := bytes.NewReader(tc.body)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(tc.body)
				req.Body = io.NopCloser(body)
				req.ContentLength = int64(len(tc.body))
				clear(w.h)
				w.code = 0
				h.ServeHTTP(w, req)
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}
