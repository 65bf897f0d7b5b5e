package deploy

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// decodeStrict reads a manifest and decodes it into v, failing on any field the upstream type does not have.
func decodeStrict(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if err := yaml.UnmarshalStrict(raw, v); err != nil {
		t.Fatalf("%s does not decode strictly: %v", path, err)
	}
}

// serverFlags reads cmd/ofaserve's flag definitions (name -> default, as written in the source) with go/ast, so
// the manifests are checked against the flags the binary really has without building it.
func serverFlags(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("../cmd/ofaserve/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in cmd/ofaserve (%v)", err)
	}
	flags := map[string]string{}
	kinds := map[string]bool{"String": true, "Int": true, "Int64": true, "Uint": true, "Uint64": true,
		"Bool": true, "Duration": true, "Float64": true}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			name, args := sel.Sel.Name, call.Args
			switch {
			case name == "Var" && len(args) == 3: // fs.Var(value, name, usage): no literal default
				args = []ast.Expr{args[1], &ast.BasicLit{Kind: token.STRING, Value: `""`}}
			case name == "Func" && len(args) == 3: // fs.Func(name, usage, fn)
				args = []ast.Expr{args[0], &ast.BasicLit{Kind: token.STRING, Value: `""`}}
			case strings.HasSuffix(name, "Var") && kinds[strings.TrimSuffix(name, "Var")] && len(args) >= 3:
				args = args[1:]
			case !kinds[name] || len(args) < 2:
				return true
			}
			lit, ok := args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			flagName, _ := strconv.Unquote(lit.Value)
			def := ""
			switch d := args[1].(type) {
			case *ast.BasicLit:
				def = d.Value
				if d.Kind == token.STRING {
					def, _ = strconv.Unquote(d.Value)
				}
			case *ast.Ident:
				def = d.Name
			}
			flags[flagName] = def
			return true
		})
	}
	if len(flags) == 0 {
		t.Fatal("found no flag definitions in cmd/ofaserve")
	}
	return flags
}

// checkArgs verifies every --flag=value in args is a flag ofaserve defines, and returns them as a map.
func checkArgs(t *testing.T, where string, args []string, flags map[string]string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, a := range args {
		name, val, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if _, ok := flags[name]; !ok {
			t.Errorf("%s passes --%s, which ofaserve does not define", where, name)
		}
		got[name] = val
	}
	return got
}

func TestServerFlagsHaveTritonNamesAndDefaults(t *testing.T) {
	flags := serverFlags(t)
	for name, def := range map[string]string{"http-port": "8000", "grpc-port": "8001", "metrics-port": "8002"} {
		if got, ok := flags[name]; !ok || got != def {
			t.Errorf("ofaserve flag --%s default %q (defined %v), want %s", name, got, ok, def)
		}
	}
	for _, name := range []string{"model-repository", "exit-timeout-secs", "model-control-mode", "load-model"} {
		if _, ok := flags[name]; !ok {
			t.Errorf("ofaserve has no --%s flag", name)
		}
	}
}

func TestDeploymentAgreesWithServer(t *testing.T) {
	flags := serverFlags(t)
	var d appsv1.Deployment
	decodeStrict(t, "kubernetes/deployment.yaml", &d)
	if d.Kind != "Deployment" || d.APIVersion != "apps/v1" {
		t.Fatalf("deployment.yaml is %s %s", d.APIVersion, d.Kind)
	}
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	args := checkArgs(t, "deployment.yaml", c.Args, flags)

	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, flag := range map[string]string{"http": "http-port", "grpc": "grpc-port", "metrics": "metrics-port"} {
		want := flags[flag]
		if v, ok := args[flag]; ok {
			want = v
		}
		if fmt.Sprint(ports[name]) != want {
			t.Errorf("container port %s = %d, but ofaserve listens on --%s=%s", name, ports[name], flag, want)
		}
	}

	gpu, ok := c.Resources.Limits[corev1.ResourceName("nvidia.com/gpu")]
	if !ok || gpu.Value() < 1 {
		t.Errorf("container limits %v lack nvidia.com/gpu", c.Resources.Limits)
	}
	probe := func(p *corev1.Probe, what, path string) {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe missing or not HTTP", what)
			return
		}
		if p.HTTPGet.Path != path {
			t.Errorf("%s probe path %q, want %q", what, p.HTTPGet.Path, path)
		}
		if p.HTTPGet.Port.String() != "http" && p.HTTPGet.Port.String() != fmt.Sprint(ports["http"]) {
			t.Errorf("%s probe port %s is not the HTTP port", what, p.HTTPGet.Port.String())
		}
	}
	probe(c.ReadinessProbe, "readiness", "/v2/health/ready")
	probe(c.LivenessProbe, "liveness", "/v2/health/live")

	// The grace period must cover the preStop pause plus the server's own drain (--exit-timeout-secs).
	exit, err := strconv.Atoi(args["exit-timeout-secs"])
	if err != nil {
		exit, err = strconv.Atoi(flags["exit-timeout-secs"])
		if err != nil {
			t.Fatalf("cannot read --exit-timeout-secs from args or defaults: %v", err)
		}
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil {
		t.Fatal("no preStop exec hook")
	}
	cmd := c.Lifecycle.PreStop.Exec.Command
	if len(cmd) != 2 || cmd[0] != "sleep" {
		t.Fatalf("preStop %v, want [sleep N]", cmd)
	}
	pause, err := strconv.Atoi(cmd[1])
	if err != nil {
		t.Fatalf("preStop sleep %q: %v", cmd[1], err)
	}
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds < int64(pause+exit) {
		t.Errorf("terminationGracePeriodSeconds %v < preStop %ds + exit timeout %ds", spec.TerminationGracePeriodSeconds, pause, exit)
	}
	if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
		t.Error("pod does not require a non-root user")
	}
}

func TestServiceExposesServerPorts(t *testing.T) {
	var d appsv1.Deployment
	decodeStrict(t, "kubernetes/deployment.yaml", &d)
	var s corev1.Service
	decodeStrict(t, "kubernetes/service.yaml", &s)
	for k, v := range s.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("service selector %s=%s does not match the pod labels %v", k, v, d.Spec.Template.Labels)
		}
	}
	named := map[string]bool{}
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		named[p.Name] = true
	}
	var ports []int32
	for _, p := range s.Spec.Ports {
		ports = append(ports, p.Port)
		if !named[p.TargetPort.String()] {
			t.Errorf("service port %s targets %q, which the container does not name", p.Name, p.TargetPort.String())
		}
	}
	slices.Sort(ports)
	if !slices.Equal(ports, []int32{8000, 8001, 8002}) {
		t.Errorf("service ports %v, want 8000 8001 8002", ports)
	}
}

// adapterRules is the part of prometheus-adapter's config this project writes.
type adapterRules struct {
	Rules []struct {
		SeriesQuery string `json:"seriesQuery"`
		Resources   struct {
			Overrides map[string]struct {
				Resource string `json:"resource"`
			} `json:"overrides"`
		} `json:"resources"`
		Name struct {
			Matches string `json:"matches"`
			As      string `json:"as"`
		} `json:"name"`
		MetricsQuery string `json:"metricsQuery"`
	} `json:"rules"`
}

// serverSource is the text of server/'s non-test Go files, where every metric name is declared.
func serverSource(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob("../server/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in server/ (%v)", err)
	}
	var b strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// Each autoscaler scales the Deployment on a pods metric that a prometheus-adapter rule makes from a gauge the
// server really exports (Triton's names).
func TestAutoscalersDrivenByServerMetrics(t *testing.T) {
	var cm corev1.ConfigMap
	decodeStrict(t, "kubernetes/prometheus-adapter.yaml", &cm)
	var rules adapterRules
	if err := yaml.UnmarshalStrict([]byte(cm.Data["config.yaml"]), &rules); err != nil {
		t.Fatalf("adapter config.yaml: %v", err)
	}
	exported := serverSource(t)
	for _, tc := range []struct{ file, series string }{
		{"kubernetes/hpa.yaml", "nv_inference_pending_request_count"},
		{"kubernetes/gpu-autoscaling/hpa.yaml", "nv_gpu_utilization"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var h autoscalingv2.HorizontalPodAutoscaler
			decodeStrict(t, tc.file, &h)
			if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != "ofaserve" {
				t.Errorf("HPA scales %+v, want Deployment ofaserve", h.Spec.ScaleTargetRef)
			}
			if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Pods == nil {
				t.Fatalf("HPA metrics %+v, want one Pods metric", h.Spec.Metrics)
			}
			metric := h.Spec.Metrics[0].Pods.Metric.Name
			found := false
			for _, r := range rules.Rules {
				if r.Name.As != metric {
					continue
				}
				found = true
				if !strings.Contains(r.SeriesQuery, tc.series+"{") {
					t.Errorf("rule for %s reads %q, want %s", metric, r.SeriesQuery, tc.series)
				}
				if r.Resources.Overrides["pod"].Resource != "pod" {
					t.Errorf("rule for %s does not map the pod label to pods", metric)
				}
			}
			if !found {
				t.Errorf("no prometheus-adapter rule produces the HPA's metric %q", metric)
			}
			if !strings.Contains(exported, `"`+tc.series+`"`) {
				t.Errorf("server/ does not export %s", tc.series)
			}
		})
	}
}

// servingRuntime and inferenceService are KServe's CRDs, reduced to the fields we set; their embedded parts are
// the upstream Kubernetes types, so strict decoding still checks every container field.
type servingRuntime struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Annotations           map[string]string `json:"annotations"`
		SupportedModelFormats []struct {
			Name       string `json:"name"`
			Version    string `json:"version"`
			AutoSelect bool   `json:"autoSelect"`
		} `json:"supportedModelFormats"`
		ProtocolVersions []string           `json:"protocolVersions"`
		Containers       []corev1.Container `json:"containers"`
	} `json:"spec"`
}

type inferenceService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Predictor struct {
			CanaryTrafficPercent *int `json:"canaryTrafficPercent"`
			MinReplicas          int  `json:"minReplicas"`
			MaxReplicas          int  `json:"maxReplicas"`
			Model                struct {
				ModelFormat struct {
					Name string `json:"name"`
				} `json:"modelFormat"`
				Runtime         string                      `json:"runtime"`
				ProtocolVersion string                      `json:"protocolVersion"`
				StorageURI      string                      `json:"storageUri"`
				Resources       corev1.ResourceRequirements `json:"resources"`
			} `json:"model"`
		} `json:"predictor"`
	} `json:"spec"`
}

func TestKServeRuntimeAgreesWithServer(t *testing.T) {
	flags := serverFlags(t)
	var rt servingRuntime
	decodeStrict(t, "kserve/servingruntime.yaml", &rt)
	if rt.Kind != "ServingRuntime" || !slices.Contains(rt.Spec.ProtocolVersions, "v2") {
		t.Errorf("servingruntime.yaml: kind %s protocols %v", rt.Kind, rt.Spec.ProtocolVersions)
	}
	if len(rt.Spec.Containers) != 1 || rt.Spec.Containers[0].Name != "kserve-container" {
		t.Fatalf("KServe needs exactly one container named kserve-container")
	}
	c := rt.Spec.Containers[0]
	args := checkArgs(t, "servingruntime.yaml", c.Args, flags)
	if args["model-repository"] != "/mnt/models" {
		t.Errorf("KServe mounts storageUri at /mnt/models; runtime serves %q", args["model-repository"])
	}
	if len(c.Ports) != 1 || fmt.Sprint(c.Ports[0].ContainerPort) != args["http-port"] {
		t.Errorf("runtime port %v does not match --http-port=%s", c.Ports, args["http-port"])
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/v2/health/ready" {
		t.Error("runtime readiness probe is not /v2/health/ready")
	}

	var isvc inferenceService
	decodeStrict(t, "kserve/inferenceservice.yaml", &isvc)
	m := isvc.Spec.Predictor.Model
	if m.Runtime != rt.Name {
		t.Errorf("InferenceService uses runtime %q, want %q", m.Runtime, rt.Name)
	}
	formats := []string{}
	for _, f := range rt.Spec.SupportedModelFormats {
		formats = append(formats, f.Name)
	}
	if !slices.Contains(formats, m.ModelFormat.Name) {
		t.Errorf("model format %q not among the runtime's %v", m.ModelFormat.Name, formats)
	}
	if m.ProtocolVersion != "v2" {
		t.Errorf("protocolVersion %q, want v2", m.ProtocolVersion)
	}
}

// The canary manifest updates the same InferenceService with a new repository and sends part of the traffic to it.
func TestKServeCanaryRollout(t *testing.T) {
	var base, canary inferenceService
	decodeStrict(t, "kserve/inferenceservice.yaml", &base)
	decodeStrict(t, "kserve/inferenceservice-canary.yaml", &canary)
	if canary.Name != base.Name {
		t.Errorf("canary updates %q, want the same InferenceService %q", canary.Name, base.Name)
	}
	p := canary.Spec.Predictor.CanaryTrafficPercent
	if p == nil || *p <= 0 || *p >= 100 {
		t.Errorf("canaryTrafficPercent %v, want between 1 and 99", p)
	}
	if base.Spec.Predictor.CanaryTrafficPercent != nil {
		t.Error("the base InferenceService must not split traffic")
	}
	bm, cm := base.Spec.Predictor.Model, canary.Spec.Predictor.Model
	if cm.StorageURI == bm.StorageURI {
		t.Errorf("canary serves the same storage %q as the base: no new version to roll out", cm.StorageURI)
	}
	if cm.Runtime != bm.Runtime || cm.ProtocolVersion != bm.ProtocolVersion || cm.ModelFormat != bm.ModelFormat {
		t.Errorf("canary model %+v differs from the base %+v beyond its storage", cm, bm)
	}
}
