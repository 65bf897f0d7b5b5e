package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/internal/testenv"
)

// Issue 15, item 2 on the real binary and the exported micro OFA (raw tensors, pytorch_libtorch): bad token
// ids and lengths mixed into good requests fail alone, with a 400; every good request gets the result it
// gets when sent alone. Two models serve the same module: ofa_entailment_raw as exported (its config names
// the vocabulary and length limits, so bad requests are refused before batching) and a copy without
// those parameters, where the module fails and the bisection must find the offenders.
//
// OFASERVE_GUILTY_SCALE multiplies the request counts (10: the 200 bad among 2,000 good).

const (
	rawModel      = "ofa_entailment_raw"
	noLimitsModel = "ofa_entailment_raw_nolimits"
)

// guiltyRepo exports the micro OFA and adds the copy without limits; it returns the repository and the
// image side.
func guiltyRepo(t *testing.T) (string, int) {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(t.TempDir(), "repo")
	cmd := exec.Command(testenv.Python(), filepath.Join(root, "scripts", "export_ofa.py"),
		"--random-init", "--config", "micro", "--seed", "7", "--quiet", "--out", repo)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("export_ofa.py: %v\n%s", err, msg)
	}
	cfg, err := os.ReadFile(filepath.Join(repo, rawModel, "config.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), `"value_range:INPUT_IDS"`) || !strings.Contains(string(cfg), `"max_length:INPUT_IDS"`) {
		t.Fatalf("the export names no input limits:\n%s", cfg)
	}
	side, err := strconv.Atoi(regexp.MustCompile(`dims: \[ 3, (\d+),`).FindStringSubmatch(string(cfg))[1])
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(cfg), "\n") {
		switch {
		case strings.HasPrefix(l, "parameters"):
		case strings.HasPrefix(l, "name:"):
			lines = append(lines, `name: "`+noLimitsModel+`"`)
		case strings.HasPrefix(l, "dynamic_batching"):
			// long enough that a round's requests share a batch
			lines = append(lines, "dynamic_batching { max_queue_delay_microseconds: 50000 }")
		default:
			lines = append(lines, l)
		}
	}
	dir := filepath.Join(repo, noLimitsModel, "1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(repo, rawModel, "1", "model.pt"), filepath.Join(dir, "model.pt")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, noLimitsModel, "config.pbtxt"), []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return repo, side
}

// rawBody is a JSON infer request: an image of constant value c and the given ids.
func rawBody(side int, c float64, ids []int64) string {
	px := strconv.FormatFloat(c, 'g', -1, 64)
	img := strings.TrimSuffix(strings.Repeat(px+",", 3*side*side), ",")
	s := make([]string, len(ids))
	for i, v := range ids {
		s[i] = strconv.FormatInt(v, 10)
	}
	return fmt.Sprintf(`{"inputs":[{"name":"IMAGE","shape":[1,3,%d,%d],"datatype":"FP32","data":[%s]},`+
		`{"name":"INPUT_IDS","shape":[1,%d],"datatype":"INT64","data":[%s]}]}`, side, side, img, len(ids), strings.Join(s, ","))
}

// goodIDs is pattern k's prompt: bos, k-dependent ids, eos; length 6..9 (or n when n > 0).
func goodIDs(k, n int) []int64 {
	if n == 0 {
		n = 6 + k%4
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(4 + (k*7+i*13)%500)
	}
	ids[0], ids[n-1] = 0, 2
	return ids
}

// badIDs is the j-th bad prompt: an id of 1e9, an id of -5, or (when lengths) 2000 ids; n is the length of
// the id kinds (0: 8).
func badIDs(j, n int, lengths bool) ([]int64, string) {
	if n == 0 {
		n = 8
	}
	switch j % 3 {
	case 0:
		ids := goodIDs(j, n)
		ids[2] = 1e9
		return ids, "1000000000"
	case 2:
		if lengths {
			return goodIDs(j, 2000), "2000"
		}
	}
	ids := goodIDs(j, n)
	ids[1] = -5
	return ids, "-5"
}

type answer struct {
	code   int
	logits []float64
	err    string
}

func post(client *http.Client, url, body string) (answer, error) {
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	var r struct {
		Error   string `json:"error"`
		Outputs []struct {
			Name string    `json:"name"`
			Data []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return answer{}, fmt.Errorf("status %d: %w", resp.StatusCode, err)
	}
	a := answer{code: resp.StatusCode, err: r.Error}
	if len(r.Outputs) == 1 && r.Outputs[0].Name == "LOGITS" {
		a.logits = r.Outputs[0].Data
	}
	return a, nil
}

func sameLogits(a, b []float64) bool {
	if len(a) != 3 || len(b) != 3 {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-4*(1+math.Abs(b[i])) {
			return false
		}
	}
	return true
}

func guiltyScale(t *testing.T) int {
	s := os.Getenv("OFASERVE_GUILTY_SCALE")
	if s == "" {
		return 1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("OFASERVE_GUILTY_SCALE=%q", s)
	}
	return n
}

func TestOnlyTheGuiltyFail(t *testing.T) {
	scale := guiltyScale(t)
	repo, side := guiltyRepo(t)
	srv, err := testenv.Start(env.bin, "/v2/health/ready", 120*time.Second, "--model-repository="+repo,
		"--model-control-mode=explicit", "--load-model="+rawModel, "--load-model="+noLimitsModel,
		"--exit-timeout-secs=10", "--allow-gpu-metrics=false")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(stopLimit); err != nil {
			t.Errorf("ofaserve did not exit cleanly: %v\n%s", err, srv.Logs.String())
		}
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 120 * time.Second}
	url := func(model string) string { return "http://" + srv.HTTP + "/v2/models/" + model + "/infer" }
	const patterns = 20
	image := func(k int) float64 { return float64(k%10) / 10 }

	// Each good pattern alone: the results the mixed runs must reproduce (both models share the module).
	alone := map[string][]float64{}
	for k := range patterns {
		for _, n := range []int{0, 8} {
			a, err := post(client, url(rawModel), rawBody(side, image(k), goodIDs(k, n)))
			if err != nil || a.code != 200 || len(a.logits) != 3 {
				t.Fatalf("pattern %d alone: %v %+v", k, err, a)
			}
			alone[fmt.Sprint(k, n)] = a.logits
		}
	}

	t.Run("validated", func(t *testing.T) {
		good, bad := 200*scale, 20*scale
		type job struct {
			k    int // pattern (good) or bad index
			bad  bool
			body string
			want string
		}
		jobs := make([]job, 0, good+bad)
		for i := range good {
			jobs = append(jobs, job{k: i % patterns, body: rawBody(side, image(i%patterns), goodIDs(i%patterns, 0))})
		}
		for j := range bad {
			ids, v := badIDs(j, 0, true)
			jobs = append(jobs, job{k: j, bad: true, body: rawBody(side, image(j), ids), want: v})
		}
		rng := rand.New(rand.NewPCG(1, 2))
		rng.Shuffle(len(jobs), func(a, b int) { jobs[a], jobs[b] = jobs[b], jobs[a] })
		answers := make([]answer, len(jobs))
		errs := make([]error, len(jobs))
		next := make(chan int)
		var wg sync.WaitGroup
		start := time.Now()
		for range 32 {
			wg.Go(func() {
				for i := range next {
					answers[i], errs[i] = post(client, url(rawModel), jobs[i].body)
				}
			})
		}
		for i := range jobs {
			next <- i
		}
		close(next)
		wg.Wait()
		took := time.Since(start)
		counts := map[string]int{}
		for i, j := range jobs {
			a := answers[i]
			if errs[i] != nil {
				t.Fatalf("request %d: %v", i, errs[i])
			}
			kind := "good"
			if j.bad {
				kind = "bad"
			}
			counts[fmt.Sprint(kind, " ", a.code)]++
			switch {
			case j.bad && (a.code != 400 || !strings.Contains(a.err, "INPUT_IDS") || !strings.Contains(a.err, j.want)):
				t.Errorf("bad %d (%s): %d %q, want 400 naming INPUT_IDS and %s", j.k, j.want, a.code, a.err, j.want)
			case !j.bad && (a.code != 200 || !sameLogits(a.logits, alone[fmt.Sprint(j.k, 0)])):
				t.Errorf("good %d: %d %q %v, want 200 %v", j.k, a.code, a.err, a.logits, alone[fmt.Sprint(j.k, 0)])
			}
		}
		t.Logf("%d good + %d bad over %s in %v: %v", good, bad, rawModel, took.Round(time.Millisecond), counts)
		text := string(fetchMetrics(t, srv))
		if v := metricValue(t, text, `nv_inference_batch_bisect_total{model="`+rawModel+`",version="1"}`); v != 0 {
			t.Errorf("%v bisections: validation let a bad request into a batch", v)
		}
	})

	t.Run("bisected", func(t *testing.T) {
		rounds := 20 * scale
		counts := map[string]int{}
		for r := range rounds {
			const goods = 9
			answers := make([]answer, goods+1)
			errs := make([]error, goods+1)
			var wg sync.WaitGroup
			badIDsR, badV := badIDs(r, 8, false)
			for i := range goods + 1 {
				wg.Go(func() {
					k := (r + i) % patterns
					body := rawBody(side, image(k), goodIDs(k, 8))
					if i == goods {
						body = rawBody(side, image(r), badIDsR)
					}
					answers[i], errs[i] = post(client, url(noLimitsModel), body)
				})
			}
			wg.Wait()
			for i, a := range answers {
				if errs[i] != nil {
					t.Fatalf("round %d request %d: %v", r, i, errs[i])
				}
				if i == goods {
					counts[fmt.Sprint("bad ", a.code)]++
					if a.code != 400 || !strings.Contains(a.err, "index out of range") || !strings.Contains(a.err, "failed on its own") {
						t.Errorf("round %d bad (%s): %d %q, want 400 with the module's message", r, badV, a.code, a.err)
					}
					continue
				}
				counts[fmt.Sprint("good ", a.code)]++
				want := alone[fmt.Sprint((r+i)%patterns, 8)]
				if a.code != 200 || !sameLogits(a.logits, want) {
					t.Errorf("round %d good %d: %d %q %v, want 200 %v", r, i, a.code, a.err, a.logits, want)
				}
			}
		}
		text := string(fetchMetrics(t, srv))
		bis := metricValue(t, text, `nv_inference_batch_bisect_total{model="`+noLimitsModel+`",version="1"}`)
		guilty := metricValue(t, text, `nv_inference_request_failed_alone_total{blame="guilty",model="`+noLimitsModel+`",version="1"}`)
		t.Logf("%d rounds of 9 good + 1 bad over %s: %v; %v bisections, %v guilty", rounds, noLimitsModel, counts, bis, guilty)
		if bis < float64(rounds)/2 || guilty != float64(rounds) {
			t.Errorf("%v bisections and %v guilty for %d rounds", bis, guilty, rounds)
		}
	})
}

func fetchMetrics(t *testing.T, srv *testenv.Server) []byte {
	t.Helper()
	resp, err := http.Get("http://" + srv.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
