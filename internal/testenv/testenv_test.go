package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPython(t *testing.T) {
	for _, tc := range []struct{ env, want string }{{"", "/usr/bin/python3"}, {"/opt/py/bin/python3", "/opt/py/bin/python3"}} {
		t.Setenv("OFASERVE_PYTHON", tc.env)
		if got := Python(); got != tc.want {
			t.Errorf("OFASERVE_PYTHON=%q: Python() = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	want, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if root != want {
		t.Errorf("RepoRoot() = %s, want %s", root, want)
	}
}

func TestBPEDirFromEnv(t *testing.T) {
	t.Setenv("OFASERVE_BPE_DIR", "/somewhere/bpe")
	if d, err := BPEDir(); err != nil || d != "/somewhere/bpe" {
		t.Errorf("BPEDir() = %q, %v", d, err)
	}
}

// The committed tokenizer data is the default, and it is the files
// third_party/ofa-bpe/README.md names (an accidental edit changes a digest).
func TestBPEDirDefault(t *testing.T) {
	t.Setenv("OFASERVE_BPE_DIR", "")
	d, err := BPEDir()
	if err != nil {
		t.Fatal(err)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "third_party", "ofa-bpe"); d != want {
		t.Errorf("BPEDir() = %s, want %s", d, want)
	}
	for _, f := range []struct{ name, sha string }{
		{"dict.txt", "2c31c5b236661067fe8626775eb995ef5fe808ac87d2ad4a6ddbef68550f5cc6"},
		{"encoder.json", "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"},
		{"vocab.bpe", "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"},
	} {
		data, err := os.ReadFile(filepath.Join(d, f.name))
		if err != nil {
			t.Errorf("%s: %v", f.name, err)
			continue
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != f.sha {
			t.Errorf("%s: sha256 %s, want %s", f.name, got, f.sha)
		}
	}
}

func TestFreePorts(t *testing.T) {
	ports, err := FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: not distinct positive ports", ports)
		}
		seen[p] = true
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		l.Close()
	}
}

func TestWaitReady(t *testing.T) {
	var calls atomic.Int32
	readyAfter3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer readyAfter3.Close()
	never := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer never.Close()
	exited := make(chan error, 1)
	exited <- errors.New("exit status 2")

	for _, tc := range []struct {
		name   string
		url    string
		exited chan error
		want   string // "" means ready
	}{
		{"ready on the third poll", readyAfter3.URL, nil, ""},
		{"never ready", never.URL, nil, "not ready"},
		{"process exited", never.URL, exited, "exit status 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := WaitReady(tc.url, 300*time.Millisecond, tc.exited)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("WaitReady = %v, want %q", err, tc.want)
			}
		})
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("ready server polled %d times, want 3", n)
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("x", 800) {
		t.Errorf("%d bytes, want 800", len(got))
	}
}

func TestBuildFailsWithOutput(t *testing.T) {
	_, err := Build(t.TempDir(), "./no/such/package")
	if err == nil || !strings.Contains(err.Error(), "go build ./no/such/package") {
		t.Errorf("Build of a missing package = %v", err)
	}
}
