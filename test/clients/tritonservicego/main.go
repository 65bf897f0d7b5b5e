// Command tritonservicego checks ofaserve with a third-party Triton client,
// github.com/sunhailin-Leo/triton-service-go, over HTTP and gRPC. It is its
// own program because that client's generated protos (package inference)
// would clash with ofaserve's in one binary. test/e2e runs it against a
// server serving test/e2e's "linear" model; it exits non-zero on any wrong
// answer.
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	triton "github.com/sunhailin-Leo/triton-service-go/v2/nvidia_inferenceserver"
	"github.com/valyala/fasthttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ofaserve/ofaserve/test/e2e/linear"
)

func main() {
	httpAddr := flag.String("http", "127.0.0.1:8000", "HTTP host:port")
	grpcAddr := flag.String("grpc", "127.0.0.1:8001", "gRPC host:port")
	model := flag.String("model", "linear", "model name")
	flag.Parse()
	if err := run(*httpAddr, *grpcAddr, *model); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("OK: triton-service-go got correct answers over HTTP and gRPC")
}

func check(out0 []float64, out1 float64, x, y []float32) error {
	w0, w1 := linear.Expected(x, y)
	if len(out0) != 4 {
		return fmt.Errorf("OUTPUT__0 has %d values", len(out0))
	}
	for j := range 4 {
		if !linear.Near(out0[j], w0[j]) {
			return fmt.Errorf("OUTPUT__0[%d] = %v, want %v", j, out0[j], w0[j])
		}
	}
	if !linear.Near(out1, w1) {
		return fmt.Errorf("OUTPUT__1 = %v, want %v", out1, w1)
	}
	return nil
}

func run(httpAddr, grpcAddr, model string) error {
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := triton.NewTritonClientWithOnlyHTTP(httpAddr, &fasthttp.Client{})
	gc := triton.NewTritonClientWithOnlyGRPC(conn)
	for _, c := range []*triton.TritonClientService{hc, gc} {
		c.SetAPIRequestTimeout(10 * time.Second)
	}
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	y := []float32{0.5, -1, 0, 2, 0.25, 1, -3, 4}

	for name, c := range map[string]*triton.TritonClientService{"HTTP": hc, "gRPC": gc} {
		if ok, err := c.CheckServerAlive(); err != nil || !ok {
			return fmt.Errorf("%s: server live = %v, %v", name, ok, err)
		}
		if ok, err := c.CheckServerReady(); err != nil || !ok {
			return fmt.Errorf("%s: server ready = %v, %v", name, ok, err)
		}
		if ok, err := c.CheckModelReady(model, "1"); err != nil || !ok {
			return fmt.Errorf("%s: model ready = %v, %v", name, ok, err)
		}
		md, err := c.ServerMetadata()
		if err != nil || md.GetName() == "" || len(md.GetExtensions()) == 0 {
			return fmt.Errorf("%s: server metadata = %v, %v", name, md, err)
		}
		mm, err := c.ModelMetadataRequest(model, "1")
		if err != nil || mm.GetName() != model || len(mm.GetInputs()) != 2 || fmt.Sprint(mm.GetInputs()[0].GetShape()) != "[-1 8]" {
			return fmt.Errorf("%s: model metadata = %v, %v", name, mm, err)
		}
		idx, err := c.ModelIndex("", true)
		if err != nil || len(idx.GetModels()) == 0 {
			return fmt.Errorf("%s: repository index = %v, %v", name, idx, err)
		}
		if _, err := c.ModelConfiguration(model, "1"); err != nil {
			return fmt.Errorf("%s: model config: %v", name, err)
		}
	}
	// gRPC config carries the typed message.
	cfg, err := gc.ModelConfiguration(model, "1")
	if err != nil || cfg.GetConfig().GetMaxBatchSize() != 16 || len(cfg.GetConfig().GetInput()) != 2 {
		return fmt.Errorf("gRPC model config = %v, %v", cfg, err)
	}

	// HTTP inference (JSON).
	body := fmt.Sprintf(`{"inputs":[{"name":"INPUT__0","shape":[1,8],"datatype":"FP32","data":%s},`+
		`{"name":"INPUT__1","shape":[1,8],"datatype":"FP32","data":%s}]}`, nums(x), nums(y))
	res, err := hc.ModelHTTPInfer([]byte(body), model, "1", func(resp any, _ ...any) ([]any, error) {
		var r struct {
			Outputs []struct {
				Name string    `json:"name"`
				Data []float64 `json:"data"`
			} `json:"outputs"`
		}
		if err := json.Unmarshal(resp.([]byte), &r); err != nil {
			return nil, err
		}
		if len(r.Outputs) != 2 || len(r.Outputs[1].Data) != 1 {
			return nil, fmt.Errorf("response %s", resp)
		}
		return []any{r.Outputs[0].Data, r.Outputs[1].Data[0]}, nil
	})
	if err != nil {
		return fmt.Errorf("HTTP infer: %w", err)
	}
	if err := check(res[0].([]float64), res[1].(float64), x, y); err != nil {
		return fmt.Errorf("HTTP infer: %w", err)
	}

	// gRPC inference (raw_input_contents in, raw_output_contents out).
	inputs := []*triton.ModelInferRequest_InferInputTensor{
		{Name: "INPUT__0", Datatype: "FP32", Shape: []int64{1, 8}},
		{Name: "INPUT__1", Datatype: "FP32", Shape: []int64{1, 8}},
	}
	outputs := []*triton.ModelInferRequest_InferRequestedOutputTensor{{Name: "OUTPUT__0"}, {Name: "OUTPUT__1"}}
	res, err = gc.ModelGRPCInfer(inputs, outputs, [][]byte{raw(x), raw(y)}, model, "1", func(resp any, _ ...any) ([]any, error) {
		r := resp.(*triton.ModelInferResponse)
		if len(r.GetRawOutputContents()) != 2 {
			return nil, errors.New("want two raw outputs")
		}
		return []any{floats(r.GetRawOutputContents()[0]), floats(r.GetRawOutputContents()[1])[0]}, nil
	})
	if err != nil {
		return fmt.Errorf("gRPC infer: %w", err)
	}
	if err := check(res[0].([]float64), res[1].(float64), x, y); err != nil {
		return fmt.Errorf("gRPC infer: %w", err)
	}

	// Statistics over both transports count what we just did.
	for name, c := range map[string]*triton.TritonClientService{"HTTP": hc, "gRPC": gc} {
		st, err := c.ModelInferStats(model, "1")
		if err != nil || len(st.GetModelStats()) != 1 || st.GetModelStats()[0].GetInferenceCount() == 0 {
			return fmt.Errorf("%s: statistics = %v, %v", name, st, err)
		}
	}
	return nil
}

func nums(v []float32) string {
	s := make([]string, len(v))
	for i, f := range v {
		s[i] = strconv.FormatFloat(float64(f), 'g', -1, 32)
	}
	return "[" + strings.Join(s, ",") + "]"
}

func raw(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

func floats(b []byte) []float64 {
	out := make([]float64, len(b)/4)
	for i := range out {
		out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
	}
	return out
}
