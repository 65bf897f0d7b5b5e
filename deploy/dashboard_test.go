package deploy

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
	"github.com/ofaserve/ofaserve/server"
)

// The Grafana dashboard (deploy/grafana/) is checked against what the server really exports: every metric
// a query names must be a family (or a summary's or histogram's _sum, _count, _bucket series) that a server
// with the dashboard's --metrics-config serves, and every label a query matches or groups by must be one
// those families carry.

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource struct {
			Type, UID string
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	} `json:"panels"`
}

// oneModel is the smallest server.Repository: one ready model version, batcher statistics of one request.
type oneModel struct{}

func (oneModel) Model(string, int64) (server.Model, error) { return oneModel{}, nil }
func (oneModel) Index(bool) []server.IndexEntry {
	return []server.IndexEntry{{Name: "m", Version: 1, State: "READY"}}
}
func (oneModel) Load(context.Context, string, *modelconfig.ModelConfig) error { return nil }
func (oneModel) Unload(context.Context, string) error                         { return nil }
func (oneModel) Ready() bool                                                  { return true }
func (oneModel) Name() string                                                 { return "m" }
func (oneModel) Version() int64                                               { return 1 }
func (oneModel) Platform() string                                             { return "pytorch_libtorch" }
func (oneModel) Config() *modelconfig.ModelConfig                             { return &modelconfig.ModelConfig{Name: "m"} }
func (oneModel) Signature() *backend.Signature                                { return &backend.Signature{Name: "m"} }
func (oneModel) Infer(context.Context, *backend.Request) (*backend.Response, error) {
	return &backend.Response{}, nil
}
func (oneModel) Stats() batcher.Stats {
	return batcher.Stats{Success: batcher.Duration{Count: 1, Total: time.Millisecond},
		Failures: map[batcher.FailReason]uint64{batcher.FailRejected: 0, batcher.FailCanceled: 0, batcher.FailBackend: 0, batcher.FailOther: 0}}
}

// exported scrapes a server configured as deploy/kubernetes/deployment.yaml configures it (its
// --metrics-config values) after one observed request, and returns its metric series names (a summary's
// and a histogram's derived series included) and label names. The GPU families need NVML; their names and
// their one label come from server/gpu.go's source.
func exported(t *testing.T, metricsConfig []string) (names, labels map[string]bool) {
	t.Helper()
	cfg, err := server.ParseMetricsConfig(metricsConfig)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Metrics: &cfg}, oneModel{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	srv.Observer("m", 1)(context.Background(), batcher.Times{RequestStart: now, QueueStart: now, ComputeStart: now,
		ComputeInputEnd: now, ComputeOutputStart: now, ComputeEnd: now, RequestEnd: now.Add(time.Millisecond)})
	rec := httptest.NewRecorder()
	srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	names, labels = map[string]bool{}, map[string]bool{}
	for name, f := range fams {
		names[name] = true
		switch f.GetType().String() {
		case "SUMMARY":
			names[name+"_sum"], names[name+"_count"], labels["quantile"] = true, true, true
		case "HISTOGRAM":
			names[name+"_sum"], names[name+"_count"], names[name+"_bucket"], labels["le"] = true, true, true, true
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
	}
	gpu, err := parser.ParseFile(token.NewFileSet(), "../server/gpu.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(gpu, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if s, _ := strconv.Unquote(lit.Value); strings.HasPrefix(s, "nv_gpu_") {
				names[s] = true
			}
		}
		return true
	})
	labels["gpu_uuid"] = true
	return names, labels
}

// deploymentMetricsConfig is the --metrics-config the Deployment passes.
func deploymentMetricsConfig(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("kubernetes/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`--metrics-config=(\S+)`).FindAllStringSubmatch(string(raw), -1) {
		out = append(out, m[1])
	}
	return out
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promMatchers = regexp.MustCompile(`\{([^}]*)\}`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\(([^)]*)\)`)
	promIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	promKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
		"group_right": true, "bool": true, "and": true, "or": true, "unless": true, "offset": true}
)

// promNames splits a PromQL expression into the metric names and the label names it uses.
func promNames(expr string) (metrics, labels []string) {
	e := promString.ReplaceAllString(expr, `""`)
	e = promRange.ReplaceAllString(e, "")
	for _, m := range promMatchers.FindAllStringSubmatch(e, -1) {
		for _, matcher := range strings.Split(m[1], ",") {
			if name := strings.TrimSpace(strings.FieldsFunc(matcher, func(r rune) bool { return strings.ContainsRune("=!~", r) })[0]); name != "" {
				labels = append(labels, name)
			}
		}
	}
	e = promMatchers.ReplaceAllString(e, "")
	for _, m := range promGrouping.FindAllStringSubmatch(e, -1) {
		for _, l := range strings.Split(m[1], ",") {
			labels = append(labels, strings.TrimSpace(l))
		}
	}
	e = promGrouping.ReplaceAllString(e, "")
	for _, m := range promIdent.FindAllStringSubmatch(e, -1) {
		id := strings.TrimRight(strings.TrimSuffix(strings.TrimSpace(m[0]), "("), " ")
		if m[1] != "" || promKeywords[id] {
			continue // a function call or a keyword
		}
		metrics = append(metrics, id)
	}
	return metrics, labels
}

func TestPromNames(t *testing.T) {
	m, l := promNames(`histogram_quantile(0.99, sum by (le, model) (rate(a_bucket{model=~"$model", x!="a,b"}[$__rate_interval]))) / on (model) b`)
	if !slices.Equal(m, []string{"a_bucket", "b"}) || !slices.Equal(l, []string{"model", "x", "le", "model", "model"}) {
		t.Fatalf("metrics %v labels %v", m, l)
	}
}

func TestGrafanaDashboardQueriesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("grafana", "ofaserve-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard title %q uid %q with %d panels", d.Title, d.UID, len(d.Panels))
	}
	mc := deploymentMetricsConfig(t)
	if !slices.Contains(mc, "summary_latencies=true") || !slices.Contains(mc, "histogram_latencies=true") {
		t.Fatalf("deployment.yaml passes --metrics-config %v: the dashboard's summaries and histograms would be empty", mc)
	}
	names, labels := exported(t, mc)
	for _, want := range []string{"nv_inference_request_summary_us", "nv_inference_queue_histogram_ms_bucket", "nv_inference_request_success"} {
		if !names[want] {
			t.Fatalf("the scrape lacks %s: %v", want, names)
		}
	}
	vars := map[string]bool{}
	var queries []string
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if q, ok := v.Query.(map[string]any); ok {
			// label_values(<metric>, <label>)
			m := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`).FindStringSubmatch(q["query"].(string))
			if m == nil {
				t.Fatalf("variable %s: query %v is not label_values(metric, label)", v.Name, q["query"])
			}
			if !labels[m[2]] {
				t.Errorf("variable %s lists label %q, which no exported family carries", v.Name, m[2])
			}
			queries = append(queries, m[1])
		}
	}
	ids := map[int]bool{}
	seen := map[string]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] || p.Title == "" || len(p.Targets) == 0 {
			t.Errorf("panel %d %q: duplicate id, no title or no query", p.ID, p.Title)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside Grafana's 24 columns", p.Title, p.GridPos)
		}
		if p.Datasource.Type != "prometheus" || !vars[strings.Trim(p.Datasource.UID, "${}")] {
			t.Errorf("panel %q: datasource %+v is not the dashboard's Prometheus variable", p.Title, p.Datasource)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" {
				t.Errorf("panel %q: a target without expr or refId", p.Title)
			}
			queries = append(queries, tg.Expr)
		}
	}
	for _, q := range queries {
		metrics, used := promNames(q)
		if len(metrics) == 0 {
			t.Errorf("query %q names no metric", q)
		}
		for _, m := range metrics {
			seen[m] = true
			if !names[m] {
				t.Errorf("query %q uses %s, which ofaserve does not export", q, m)
			}
		}
		for _, l := range used {
			if !labels[l] {
				t.Errorf("query %q uses label %q, which no exported family carries", q, l)
			}
		}
	}
	for _, fam := range []string{"nv_inference_request_summary_us", "nv_inference_request_histogram_ms_bucket", "nv_inference_queue_summary_us_sum"} {
		if !seen[fam] {
			t.Errorf("the dashboard has no panel on %s", fam)
		}
	}
}
