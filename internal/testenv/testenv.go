// Package testenv is what ofaserve's tests share to run the real thing: the
// repository root, the Python interpreter that sees Debian's torch and PIL,
// OFA's BPE data, binaries built from this module, free loopback ports, and
// an ofaserve process started on them, waited on until ready and stopped.
//
// It imports no ofaserve package, so the tests of any package (servers,
// backends, preprocessing, client programs) can use it without a cycle.
package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Python returns the interpreter that sees Debian's torch and PIL:
// $OFASERVE_PYTHON, else /usr/bin/python3.
func Python() string {
	if p := os.Getenv("OFASERVE_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// RepoRoot returns the root of the ofaserve checkout containing the
// working directory (the folder whose go.mod declares the module).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 64 {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/ofaserve/ofaserve\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("testenv: not inside the ofaserve repository")
}

// BPEDir returns the folder of OFA's BPE data (encoder.json, vocab.bpe,
// dict.txt): $OFASERVE_BPE_DIR as given, else the copy committed in
// third_party/ofa-bpe, which must hold encoder.json.
func BPEDir() (string, error) {
	if d := os.Getenv("OFASERVE_BPE_DIR"); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	d := filepath.Join(root, "third_party", "ofa-bpe")
	if _, err := os.Stat(filepath.Join(d, "encoder.json")); err != nil {
		return "", fmt.Errorf("OFA BPE files not found (%w); set OFASERVE_BPE_DIR", err)
	}
	return d, nil
}

// Build compiles the module's package pkg ("./cmd/ofaserve", relative to the
// repository root) into dir and returns the binary's path,
// dir/<last element of pkg>.
func Build(dir, pkg string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// FreePorts returns n distinct TCP ports that were free on 127.0.0.1 a
// moment ago (all are held open together, then released).
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// WaitReady polls GET url until it answers 200, for at most limit. A value
// on exited (the server's end; nil channel: never) ends the wait with an
// error.
func WaitReady(url string, limit time.Duration, exited <-chan error) error {
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("ofaserve exited before %s was ready: %v", url, err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ofaserve not ready at %s within %v", url, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SyncBuffer is a log sink that a server's goroutines may write while a
// test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitFor reports whether substr appears in the buffer within limit. A
// child process's output reaches the buffer through a pipe and a copying
// goroutine, so a line the server wrote before answering may arrive after
// the answer: tests that look for a log line wait for it.
func (s *SyncBuffer) WaitFor(substr string, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(s.String(), substr) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// Server is a running ofaserve process.
type Server struct {
	// HTTP, GRPC and Metrics are the listeners' 127.0.0.1:port addresses.
	HTTP, GRPC, Metrics string
	// Logs collects the process's stdout and stderr.
	Logs *SyncBuffer
	cmd  *exec.Cmd
	done chan error
}

// Start runs the ofaserve binary bin with args plus HTTP, gRPC and metrics
// listeners on free 127.0.0.1 ports, and waits up to limit until GET
// readyPath ("/v2/health/ready") on its HTTP port answers 200. On failure
// the process is killed and the error carries its output.
func Start(bin, readyPath string, limit time.Duration, args ...string) (*Server, error) {
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	s := &Server{
		HTTP:    fmt.Sprintf("127.0.0.1:%d", ports[0]),
		GRPC:    fmt.Sprintf("127.0.0.1:%d", ports[1]),
		Metrics: fmt.Sprintf("127.0.0.1:%d", ports[2]),
		Logs:    &SyncBuffer{},
		done:    make(chan error, 1),
	}
	s.cmd = exec.Command(bin, append([]string{
		"--http-address=127.0.0.1", fmt.Sprintf("--http-port=%d", ports[0]),
		"--grpc-address=127.0.0.1", fmt.Sprintf("--grpc-port=%d", ports[1]),
		"--metrics-address=127.0.0.1", fmt.Sprintf("--metrics-port=%d", ports[2]),
	}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.Logs, s.Logs
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait() }()
	if err := WaitReady("http://"+s.HTTP+readyPath, limit, s.done); err != nil {
		_ = s.cmd.Process.Kill()
		return nil, fmt.Errorf("%w\n%s", err, s.Logs.String())
	}
	return s, nil
}

// Stop sends SIGTERM and waits up to limit for the process to exit; it
// returns the exit error, or kills the process when it outlives limit.
func (s *Server) Stop(limit time.Duration) error {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-s.done:
		return err
	case <-time.After(limit):
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("no exit %v after SIGTERM", limit)
	}
}
