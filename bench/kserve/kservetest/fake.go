// Package kservetest is a small fake KServe v2 HTTP server for ofabench's
// tests: it serves metadata, config, readiness and statistics for one model,
// parses inference requests in JSON or with the binary extension (checking
// the framing strictly), answers with a fixed FP32 output in the format the
// request asked for, and keeps Triton-shaped statistics, so the harness can
// be tested end to end without the real server.
package kservetest

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ofaserve/ofaserve/bench/kserve"
	"github.com/ofaserve/ofaserve/protocol/datatype"
)

// Server is the fake. Set its fields before the first request.
type Server struct {
	*httptest.Server
	Meta         kserve.ModelMetadata
	MaxBatchSize int
	// Delay is how long each request "computes".
	Delay time.Duration
	// FailEvery makes every n-th inference request fail with 503 (0: never).
	FailEvery int

	mu       sync.Mutex
	n        int
	stats    kserve.ModelStats
	batch    map[uint64]*kserve.BatchStats
	Received []Received // every decoded request, in arrival order
}

// Received is one decoded inference request input.
type Received struct {
	Inputs map[string]ReceivedTensor
	Binary bool // sent with the binary extension
}

// ReceivedTensor is one decoded input: raw bytes for numeric data or the
// BYTES elements (already base64-decoded for IMAGE in JSON).
type ReceivedTensor struct {
	Datatype string
	Shape    []int64
	Raw      []byte
	Elems    [][]byte
}

// New starts a fake serving meta on loopback.
func New(meta kserve.ModelMetadata, maxBatchSize int) *Server {
	s := &Server{Meta: meta, MaxBatchSize: maxBatchSize, batch: map[uint64]*kserve.BatchStats{}}
	s.stats = kserve.ModelStats{Name: meta.Name, Version: "1"}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	base := "/v2/models/" + s.Meta.Name
	p := strings.Replace(r.URL.Path, "/versions/1", "", 1)
	switch {
	case p == base && r.Method == http.MethodGet:
		writeJSON(w, 200, s.Meta)
	case p == base+"/config":
		writeJSON(w, 200, map[string]any{"name": s.Meta.Name, "max_batch_size": s.MaxBatchSize})
	case p == base+"/ready":
		w.WriteHeader(200)
	case p == base+"/stats":
		s.mu.Lock()
		st := s.stats
		st.BatchStats = nil
		for _, b := range s.batch {
			st.BatchStats = append(st.BatchStats, *b)
		}
		s.mu.Unlock()
		writeJSON(w, 200, kserve.StatsDoc{ModelStats: []kserve.ModelStats{st}})
	case p == base+"/infer" && r.Method == http.MethodPost:
		s.infer(w, r)
	default:
		writeJSON(w, 404, kserve.ErrorBody{Error: "Not Found"})
	}
}

type inReq struct {
	Inputs []struct {
		Name       string          `json:"name"`
		Shape      []int64         `json:"shape"`
		Datatype   string          `json:"datatype"`
		Parameters map[string]any  `json:"parameters"`
		Data       json.RawMessage `json:"data"`
	} `json:"inputs"`
	Outputs []struct {
		Name       string         `json:"name"`
		Parameters map[string]any `json:"parameters"`
	} `json:"outputs"`
	Parameters map[string]any `json:"parameters"`
}

func (s *Server) infer(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeJSON(w, 400, kserve.ErrorBody{Error: err.Error()})
		return
	}
	rec, batch, binOut, err := s.decode(body, r.Header.Get(kserve.HeaderLength))
	if err != nil {
		writeJSON(w, 400, kserve.ErrorBody{Error: err.Error()})
		return
	}
	s.mu.Lock()
	s.n++
	fail := s.FailEvery > 0 && s.n%s.FailEvery == 0
	s.Received = append(s.Received, rec)
	s.mu.Unlock()
	if fail {
		s.mu.Lock()
		s.stats.InferenceStats.Fail.Count++
		s.mu.Unlock()
		writeJSON(w, 503, kserve.ErrorBody{Error: "queue full"})
		return
	}
	q := time.Now()
	time.Sleep(s.Delay)
	infer := time.Since(q)
	scores := make([]float32, 3*batch)
	for i := range scores {
		scores[i] = float32(i%3) / 3
	}
	s.mu.Lock()
	is := &s.stats.InferenceStats
	is.Queue.Count++
	is.Queue.NS += kserve.Uint(q.Sub(start))
	is.ComputeInput.Count++
	is.ComputeInfer.Count++
	is.ComputeInfer.NS += kserve.Uint(infer)
	is.ComputeOutput.Count++
	is.Success.Count++
	is.Success.NS += kserve.Uint(time.Since(start))
	s.stats.InferenceCount += kserve.Uint(batch)
	s.stats.ExecutionCount++
	b := s.batch[uint64(batch)]
	if b == nil {
		b = &kserve.BatchStats{BatchSize: kserve.Uint(batch)}
		s.batch[uint64(batch)] = b
	}
	b.ComputeInfer.Count++
	b.ComputeInfer.NS += kserve.Uint(infer)
	s.mu.Unlock()

	out := map[string]any{"name": "SCORES", "datatype": "FP32", "shape": []int{batch, 3}}
	resp := map[string]any{"model_name": s.Meta.Name, "model_version": "1", "outputs": []any{out}}
	if !binOut {
		out["data"] = scores
		writeJSON(w, 200, resp)
		return
	}
	raw := make([]byte, 0, 4*len(scores))
	for _, f := range scores {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
	}
	out["parameters"] = map[string]any{"binary_data_size": len(raw)}
	head, _ := json.Marshal(resp)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(kserve.HeaderLength, strconv.Itoa(len(head)))
	_, _ = w.Write(append(head, raw...))
}

func (s *Server) decode(body []byte, hl string) (Received, int, bool, error) {
	rec := Received{Inputs: map[string]ReceivedTensor{}, Binary: hl != ""}
	jsonPart, rest := body, []byte(nil)
	if hl != "" {
		n, err := strconv.Atoi(hl)
		if err != nil || n <= 0 || n > len(body) {
			return rec, 0, false, fmt.Errorf("bad %s %q", kserve.HeaderLength, hl)
		}
		jsonPart, rest = body[:n], body[n:]
	}
	var req inReq
	if err := json.Unmarshal(jsonPart, &req); err != nil {
		return rec, 0, false, fmt.Errorf("request JSON: %w", err)
	}
	batch := -1
	for _, in := range req.Inputs {
		t := ReceivedTensor{Datatype: in.Datatype, Shape: in.Shape}
		if v, ok := in.Parameters["binary_data_size"]; ok {
			if hl == "" {
				return rec, 0, false, fmt.Errorf("binary_data_size without %s", kserve.HeaderLength)
			}
			n := int(v.(float64))
			if n > len(rest) {
				return rec, 0, false, fmt.Errorf("unexpected size for input '%s'", in.Name)
			}
			t.Raw, rest = rest[:n], rest[n:]
			if in.Datatype == "BYTES" {
				els, err := datatype.Split(t.Raw)
				if err != nil {
					return rec, 0, false, err
				}
				t.Elems = els
			}
		} else {
			if in.Datatype == "BYTES" {
				var ss []string
				if err := json.Unmarshal(in.Data, &ss); err != nil {
					return rec, 0, false, fmt.Errorf("input %s: %w", in.Name, err)
				}
				for _, e := range ss {
					if in.Name == "IMAGE" {
						d, err := base64.StdEncoding.DecodeString(e)
						if err != nil {
							return rec, 0, false, fmt.Errorf("IMAGE is not base64: %w", err)
						}
						t.Elems = append(t.Elems, d)
					} else {
						t.Elems = append(t.Elems, []byte(e))
					}
				}
			} else {
				var nums []float64
				if err := json.Unmarshal(in.Data, &nums); err != nil {
					return rec, 0, false, fmt.Errorf("input %s: %w", in.Name, err)
				}
				sz := datatype.Parse(in.Datatype).Size()
				t.Raw = make([]byte, len(nums)*sz)
				for i, f := range nums {
					switch in.Datatype {
					case "FP32":
						binary.LittleEndian.PutUint32(t.Raw[i*4:], math.Float32bits(float32(f)))
					case "INT64":
						binary.LittleEndian.PutUint64(t.Raw[i*8:], uint64(int64(f)))
					default:
						return rec, 0, false, fmt.Errorf("fake server: JSON %s not supported", in.Datatype)
					}
				}
			}
		}
		if len(in.Shape) > 0 && s.MaxBatchSize > 0 {
			if batch >= 0 && int(in.Shape[0]) != batch {
				return rec, 0, false, fmt.Errorf("input '%s' batch size does not match other inputs", in.Name)
			}
			batch = int(in.Shape[0])
		}
		rec.Inputs[in.Name] = t
	}
	if len(rest) != 0 {
		return rec, 0, false, fmt.Errorf("unexpected additional input data")
	}
	if batch < 0 {
		batch = 1
	}
	binOut := false
	if v, ok := req.Parameters["binary_data_output"].(bool); ok && v {
		binOut = true
	}
	for _, o := range req.Outputs {
		if v, ok := o.Parameters["binary_data"].(bool); ok && v {
			binOut = true
		}
	}
	return rec, batch, binOut, nil
}

// Requests returns how many inference requests arrived.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
