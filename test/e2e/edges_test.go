package e2e_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ofaserve/ofaserve/internal/testenv"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

// edgeServer starts ofaserve in mode none with small limits and the
// model-repository group restricted on both protocols.
func edgeServer(t *testing.T) *testenv.Server {
	t.Helper()
	s, err := testenv.Start(env.bin, "/v2/health/ready", 60*time.Second, "--model-repository="+env.repo,
		"--model-control-mode=none", "--exit-timeout-secs=10", "--allow-gpu-metrics=false",
		"--http-max-input-size=65536", "--http-read-timeout=2s", "--http-idle-timeout=2s", "--grpc-max-concurrent-streams=8",
		"--memory-limit=1GiB", "--http-restricted-api=model-repository:admin-key=s3cret",
		"--grpc-restricted-protocol=model-repository:admin-key=s3cret")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(stopLimit); err != nil {
			t.Errorf("edge server exit: %v", err)
		}
	})
	return s
}

func TestEdgesHTTP(t *testing.T) {
	s := edgeServer(t)
	x, y := inputs(3)
	good := inferBody("edge", x, y)
	url := func(p string) string { return "http://" + s.HTTP + p }
	for _, tc := range []struct {
		name, path, body string
		hdr              []string
		code             int
		msg              string
	}{
		{"brotli", "/v2/models/linear/infer", good, []string{"Content-Encoding", "br"}, 415, "unsupported Content-Encoding 'br': supported are identity, gzip, x-gzip and deflate"},
		{"shared memory", "/v2/models/linear/infer", strings.Replace(good, `"datatype":"FP32","data":`+jsonNums(x), `"datatype":"FP32","parameters":{"shared_memory_region":"r","shared_memory_byte_size":32}`, 1), nil, 400, "shared memory is not supported by this server: input 'INPUT__0'"},
		{"body over the limit", "/v2/models/linear/infer", `{"inputs":[],"pad":"` + strings.Repeat("x", 70000) + `"}`, nil, 413, "exceeds the maximum allowed input size of 65536 bytes"},
		{"bad version", "/v2/models/linear/versions/abc/infer", good, nil, 400, "version string 'abc'"},
		{"bare string data", "/v2/models/linear/infer", strings.Replace(good, jsonNums(x), `"1,2,3,4,5,6,7,8"`, 1), nil, 400, "'data' of input 'INPUT__0' must be a JSON array"},
		{"load without the key", "/v2/repository/models/linear/load", "", nil, 403, "API group 'model-repository' is restricted: the request needs header 'admin-key'"},
		{"load in mode none", "/v2/repository/models/linear/load", "", []string{"admin-key", "s3cret"}, 400, "model control mode is 'none'"},
		{"unload in mode none", "/v2/repository/models/linear/unload", "", []string{"admin-key", "s3cret"}, 400, "--model-control-mode=explicit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := request(t, "POST", url(tc.path), tc.body, tc.hdr...)
			var e struct{ Error string }
			if err := json.Unmarshal(r.body, &e); err != nil || r.code != tc.code || !strings.Contains(e.Error, tc.msg) {
				t.Errorf("%d %s, want %d containing %q", r.code, r.body, tc.code, tc.msg)
			}
		})
	}
	checkJSONInfer(t, request(t, "POST", url("/v2/models/linear/infer"), good), "edge", x, y)
	// One line per failed request at the default level, with its model,
	// status, reason and latency.
	logs := s.Logs.String()
	for _, w := range []string{`status=415`, `status=413`, `status=403`, `model=linear`, `reason="unsupported Content-Encoding 'br'`, "latency="} {
		if !strings.Contains(logs, w) {
			t.Errorf("log lacks %q:\n%s", w, logs)
		}
	}
	if n := strings.Count(logs, "request failed"); n != 8 {
		t.Errorf("%d failure lines, want 8:\n%s", n, logs)
	}
	// go_* and process_* metrics.
	r := request(t, "GET", "http://"+s.Metrics+"/metrics", "")
	for _, w := range []string{"\ngo_goroutines ", "\nprocess_resident_memory_bytes ", "\ngo_gc_gogc_percent", "\ngo_gc_gomemlimit_bytes 1.073741824e+09"} {
		if !strings.Contains(string(r.body), w) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(w))
		}
	}
}

// TestEdgesHTTPTimeouts checks that a slow body and an idle keep-alive
// connection are cut by --http-read-timeout and --http-idle-timeout (2 s).
func TestEdgesHTTPTimeouts(t *testing.T) {
	s := edgeServer(t)
	closedWithin := func(t *testing.T, c net.Conn, limit time.Duration) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(limit))
		start := time.Now()
		_, err := io.Copy(io.Discard, c)
		if err != nil {
			t.Fatalf("connection not closed by the server within %v: %v", limit, err)
		}
		if d := time.Since(start); d > limit {
			t.Fatalf("closed after %v", d)
		}
	}
	t.Run("slow body", func(t *testing.T) {
		c, err := net.Dial("tcp", s.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v2/models/linear/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"inputs\":")
		closedWithin(t, c, 20*time.Second)
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c, err := net.Dial("tcp", s.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("live = %v %v", resp, err)
		}
		resp.Body.Close()
		closedWithin(t, c, 20*time.Second)
	})
}

func TestEdgesGRPC(t *testing.T) {
	s := edgeServer(t)
	conn, err := grpc.NewClient(s.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, ctx := pb.NewGRPCInferenceServiceClient(conn), rpcCtx(t)
	x, y := inputs(5)
	big := grpcInferRequest("linear", "big", x, y, true)
	big.RawInputContents[0] = make([]byte, 70000)
	key := metadata.AppendToOutgoingContext(ctx, "admin-key", "s3cret")
	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"message over the limit", func() error { _, err := c.ModelInfer(ctx, big); return err }, codes.ResourceExhausted, "larger than max"},
		{"load without the key", func() error {
			_, err := c.RepositoryModelLoad(ctx, &pb.RepositoryModelLoadRequest{ModelName: "linear"})
			return err
		}, codes.PermissionDenied, "API group 'model-repository' is restricted: the request needs header 'admin-key'"},
		{"unload in mode none", func() error {
			_, err := c.RepositoryModelUnload(key, &pb.RepositoryModelUnloadRequest{ModelName: "linear"})
			return err
		}, codes.InvalidArgument, "model control mode is 'none'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := status.FromError(tc.call())
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
				t.Errorf("got %v %q, want %v containing %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
		})
	}
	resp, err := c.ModelInfer(ctx, grpcInferRequest("linear", "ok", x, y, true))
	if err != nil {
		t.Fatal(err)
	}
	checkGRPCInfer(t, resp, "linear", "ok", x, y)
	if logs := s.Logs.String(); !strings.Contains(logs, "code=PermissionDenied") || !strings.Contains(logs, "code=InvalidArgument") {
		t.Errorf("gRPC failures not logged:\n%s", logs)
	}
}

// TestEdgesGRPCHugeMessage sends a 300 MB gRPC message (the case)
// to a server capped at 64 KiB: it is refused with RESOURCE_EXHAUSTED from
// its length prefix, and the server's RSS does not grow by 100 MB.
func TestEdgesGRPCHugeMessage(t *testing.T) {
	s := edgeServer(t)
	rss := func() float64 {
		r := request(t, "GET", "http://"+s.Metrics+"/metrics", "")
		for line := range strings.SplitSeq(string(r.body), "\n") {
			if rest, ok := strings.CutPrefix(line, "process_resident_memory_bytes "); ok {
				var v float64
				if _, err := fmt.Sscan(rest, &v); err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
		t.Fatal("no process_resident_memory_bytes")
		return 0
	}
	conn, err := grpc.NewClient(s.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(1<<30)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	x, y := inputs(6)
	req := grpcInferRequest("linear", "huge", x, y, true)
	req.RawInputContents[0] = make([]byte, 300<<20)
	before := rss()
	_, err = pb.NewGRPCInferenceServiceClient(conn).ModelInfer(rpcCtx(t), req)
	if st, _ := status.FromError(err); st.Code() != codes.ResourceExhausted {
		t.Fatalf("300 MB message: %v, want RESOURCE_EXHAUSTED", err)
	}
	after := rss()
	t.Logf("server RSS %.0f MB -> %.0f MB", before/1e6, after/1e6)
	if after-before > 100e6 {
		t.Errorf("server RSS grew by %.0f MB on a refused message", (after-before)/1e6)
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir and returns their paths and a pool that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ofaserve-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLS serves HTTPS and gRPC over TLS from a self-signed certificate and
// talks to both; a plain-text client is refused.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	ports, err := testenv.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	httpAddr, grpcAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	logs := &testenv.SyncBuffer{}
	cmd := exec.Command(env.bin, "--model-repository="+env.repo, "--model-control-mode=explicit", "--load-model=linear",
		"--allow-gpu-metrics=false", "--exit-timeout-secs=10",
		"--http-address=127.0.0.1", fmt.Sprintf("--http-port=%d", ports[0]),
		"--grpc-address=127.0.0.1", fmt.Sprintf("--grpc-port=%d", ports[1]),
		"--metrics-address=127.0.0.1", fmt.Sprintf("--metrics-port=%d", ports[2]),
		"--http-tls-cert="+certFile, "--http-tls-key="+keyFile,
		"--grpc-use-ssl", "--grpc-server-cert="+certFile, "--grpc-server-key="+keyFile)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(stopLimit):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("TLS server did not exit")
		}
	})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: rpcTimeout}
	ready := false
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && !ready; time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("server exited: %v\n%s", err, logs.String())
		default:
		}
		if resp, err := client.Get("https://" + httpAddr + "/v2/health/ready"); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == 200
		}
	}
	if !ready {
		t.Fatalf("not ready over HTTPS:\n%s", logs.String())
	}
	x, y := inputs(9)
	resp, err := client.Post("https://"+httpAddr+"/v2/models/linear/infer", "application/json", strings.NewReader(inferBody("tls", x, y)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checkJSONInfer(t, response{resp.StatusCode, resp.Header, b}, "tls", x, y)
	if resp, err := http.Get("http://" + httpAddr + "/v2/health/ready"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served on the TLS port")
		}
	}

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, "")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	gr, err := pb.NewGRPCInferenceServiceClient(conn).ModelInfer(ctx, grpcInferRequest("linear", "tls", x, y, true))
	if err != nil {
		t.Fatal(err)
	}
	checkGRPCInfer(t, gr, "linear", "tls", x, y)
	plain, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer pcancel()
	if _, err := pb.NewGRPCInferenceServiceClient(plain).ServerLive(pctx, &pb.ServerLiveRequest{}); err == nil {
		t.Error("plain-text gRPC served on the TLS port")
	}
}
