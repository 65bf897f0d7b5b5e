package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// parseDockerfile parses ../Dockerfile.cuda into stages and global ARGs with BuildKit's own parser.
func parseDockerfile(t *testing.T) ([]instructions.Stage, []instructions.ArgCommand) {
	t.Helper()
	f, err := os.Open("../Dockerfile.cuda")
	if err != nil {
		t.Fatalf("open Dockerfile.cuda: %v", err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse Dockerfile.cuda: %v", err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("instructions in Dockerfile.cuda: %v", err)
	}
	return stages, metaArgs
}

func globalArg(args []instructions.ArgCommand, key string) (string, bool) {
	for _, a := range args {
		for _, kv := range a.Args {
			if kv.Key == key && kv.Value != nil {
				return *kv.Value, true
			}
		}
	}
	return "", false
}

func TestDockerfileStages(t *testing.T) {
	stages, _ := parseDockerfile(t)
	var names []string
	for _, s := range stages {
		names = append(names, s.Name)
	}
	for _, want := range []string{"torch", "build", "runtime"} {
		if !slices.Contains(names, want) {
			t.Errorf("Dockerfile.cuda has stages %v, want a %q stage", names, want)
		}
	}
	if last := stages[len(stages)-1]; last.Name != "runtime" {
		t.Errorf("final stage is %q, want runtime (the image that ships)", last.Name)
	}
	// The build stage must build both the shim (CMake against the wheel's libtorch) and the Go server.
	build := stageNamed(t, stages, "build")
	var runs []string
	for _, c := range build.Commands {
		if r, ok := c.(*instructions.RunCommand); ok {
			runs = append(runs, strings.Join(r.CmdLine, " "))
		}
	}
	all := strings.Join(runs, "\n")
	for _, want := range []string{"cmake -S . -B build", "torch.utils.cmake_prefix_path", "go build", "./cmd/ofaserve"} {
		if !strings.Contains(all, want) {
			t.Errorf("build stage does not run %q", want)
		}
	}
}

func stageNamed(t *testing.T, stages []instructions.Stage, name string) instructions.Stage {
	t.Helper()
	for _, s := range stages {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no stage %q", name)
	return instructions.Stage{}
}

func TestDockerfileRuntimeStage(t *testing.T) {
	stages, _ := parseDockerfile(t)
	rt := stageNamed(t, stages, "runtime")
	var (
		user    string
		ports   []string
		volumes []string
		health  []string
		copied  []string
	)
	for _, c := range rt.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.ExposeCommand:
			ports = append(ports, c.Ports...)
		case *instructions.VolumeCommand:
			volumes = append(volumes, c.Volumes...)
		case *instructions.HealthCheckCommand:
			health = c.Health.Test
		case *instructions.CopyCommand:
			copied = append(copied, c.SourcePaths...)
		}
	}
	if user == "" || user == "root" || user == "0" {
		t.Errorf("runtime stage runs as %q, want a non-root user", user)
	}
	slices.Sort(ports)
	if want := []string{"8000", "8001", "8002"}; !slices.Equal(ports, want) {
		t.Errorf("EXPOSE %v, want %v", ports, want)
	}
	if !slices.Contains(volumes, "/models") {
		t.Errorf("VOLUME %v, want the model repository /models", volumes)
	}
	if !strings.Contains(strings.Join(health, " "), "127.0.0.1:8000/v2/health/ready") {
		t.Errorf("HEALTHCHECK %v does not probe /v2/health/ready on the HTTP port", health)
	}
	for _, want := range []string{"/src/build/libofatorch.so", "/out/ofaserve"} {
		if !slices.Contains(copied, want) {
			t.Errorf("runtime stage does not copy %s (copies %v)", want, copied)
		}
	}
}

// TestDockerfileTorchPinnedOnce: the libtorch version is pinned by version and checksum in one place, and the
// wheel named there is the version declared.
func TestDockerfileTorchPinnedOnce(t *testing.T) {
	_, metaArgs := parseDockerfile(t)
	version, ok1 := globalArg(metaArgs, "TORCH_VERSION")
	wheel, ok2 := globalArg(metaArgs, "TORCH_WHEEL")
	sum, ok3 := globalArg(metaArgs, "TORCH_SHA256")
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("global ARGs TORCH_VERSION, TORCH_WHEEL, TORCH_SHA256 must all be set (got %q %q %q)", version, wheel, sum)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sum) {
		t.Errorf("TORCH_SHA256 %q is not a sha256 hex digest", sum)
	}
	if !strings.HasPrefix(wheel, "torch-"+strings.ReplaceAll(version, "+", "%2B")+"-") {
		t.Errorf("TORCH_WHEEL %q is not the wheel of TORCH_VERSION %q", wheel, version)
	}
	raw, err := os.ReadFile("../Dockerfile.cuda")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), sum); n != 1 {
		t.Errorf("the torch checksum appears %d times in Dockerfile.cuda, want exactly one place", n)
	}
	if !strings.Contains(string(raw), "sha256sum -c") {
		t.Error("Dockerfile.cuda never verifies the wheel's checksum (sha256sum -c)")
	}
}
