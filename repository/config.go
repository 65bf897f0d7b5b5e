package repository

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// ConfigFile is the name of a model's configuration inside its directory.
const ConfigFile = "config.pbtxt"

// DefaultModelFilename is the model file looked for in each version folder
// when the config names none (Triton's default for pytorch_libtorch).
const DefaultModelFilename = "model.pt"

// Platform and backend names of Triton's TorchScript model kind, and the
// platform of ensembles (whose steps the repository loads first: depend.go).
const (
	PlatformLibtorch = "pytorch_libtorch"
	BackendPytorch   = "pytorch"
	PlatformEnsemble = "ensemble"
	// PlatformSimulated is the simulated accelerator (backend/simulated), a kind named by its platform.
	PlatformSimulated = "simulated"
)

// maxConfigSize bounds how much of a config.pbtxt is read.
const maxConfigSize = 4 << 20

// ConfigError is a config.pbtxt that cannot be used. File names it, Field
// names the offending field when one is known, and Msg says what is wrong.
type ConfigError struct {
	File  string
	Field string
	Msg   string
}

func (e *ConfigError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s: field '%s': %s", e.File, e.Field, e.Msg)
}

// ReadConfig reads and parses dir/config.pbtxt. It does not validate it.
func ReadConfig(dir string) (*modelconfig.ModelConfig, error) {
	file := filepath.Join(dir, ConfigFile)
	f, err := os.Open(file)
	if err != nil {
		return nil, &ConfigError{File: file, Msg: fmt.Sprintf("cannot read: %v", errors.Unwrap(err))}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, &ConfigError{File: file, Msg: fmt.Sprintf("cannot read: %v", err)}
	}
	if len(data) > maxConfigSize {
		return nil, &ConfigError{File: file, Msg: fmt.Sprintf("larger than %d bytes", maxConfigSize)}
	}
	return ParseConfig(file, data)
}

// ParseConfig parses protobuf text (a config.pbtxt's content); file is only
// used in error messages. Unknown fields and malformed values are errors
// that name the line and the field.
func ParseConfig(file string, data []byte) (*modelconfig.ModelConfig, error) {
	cfg := &modelconfig.ModelConfig{}
	if err := (prototext.UnmarshalOptions{}).Unmarshal(data, cfg); err != nil {
		msg := strings.TrimLeft(strings.TrimPrefix(err.Error(), "proto:"), " \u00a0")
		return nil, &ConfigError{File: file, Field: fieldAt(data, msg), Msg: msg}
	}
	return cfg, nil
}

var (
	errPosRE   = regexp.MustCompile(`\(line (\d+):(\d+)\)`)
	fieldRE    = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*:`)
	unknownRE  = regexp.MustCompile(`unknown field: `)
	fieldAtMax = 1 << 16
)

// fieldAt names the field a prototext error points at: the last "name:"
// before the error's line:column, for errors about a value (unknown-field
// errors already name the field).
func fieldAt(data []byte, msg string) string {
	if unknownRE.MatchString(msg) {
		return ""
	}
	m := errPosRE.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	line, err1 := strconv.Atoi(m[1])
	col, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil || line < 1 || col < 1 {
		return ""
	}
	lines := strings.SplitN(string(data), "\n", line+1)
	if len(lines) < line {
		return ""
	}
	prefix := strings.Join(lines[:line-1], "\n") + "\n" + lines[line-1][:min(col-1, len(lines[line-1]))]
	if len(prefix) > fieldAtMax {
		prefix = prefix[len(prefix)-fieldAtMax:]
	}
	all := fieldRE.FindAllStringSubmatch(prefix, -1)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1][1]
}

// Kind returns the model kind a config asks for: the backend name, or the
// backend that implements its platform ("pytorch" for pytorch_libtorch).
func Kind(cfg *modelconfig.ModelConfig) string {
	if cfg.GetBackend() != "" {
		return cfg.GetBackend()
	}
	if cfg.GetPlatform() == PlatformLibtorch {
		return BackendPytorch
	}
	return cfg.GetPlatform()
}

// Normalize validates cfg, read from file for the model in directory
// modelName, and fills in Triton's defaults in place: the name, the version
// policy (latest 1), the model file name, instance groups (one group of
// count 1, CPU or GPU by gpuCount) with their names, kinds and gpus, and the
// preferred batch size [max_batch_size] of an empty dynamic_batching list.
// gpuCount is the number of usable GPUs.
func Normalize(file, modelName string, cfg *modelconfig.ModelConfig, gpuCount int) error {
	bad := func(field, format string, args ...any) error {
		return &ConfigError{File: file, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if cfg.Name == "" {
		cfg.Name = modelName
	} else if cfg.Name != modelName {
		return bad("name", "model name '%s' does not match its directory '%s'", cfg.Name, modelName)
	}
	switch {
	case cfg.Platform == "" && cfg.Backend == "":
		return bad("platform", "must specify 'platform' or 'backend'")
	case cfg.Platform == PlatformEnsemble:
		if err := normalizeEnsemble(cfg, bad); err != nil {
			return err
		}
	case cfg.Platform == PlatformLibtorch && cfg.Backend == "":
		cfg.Backend = BackendPytorch
	case cfg.Platform == PlatformLibtorch && cfg.Backend != BackendPytorch:
		return bad("backend", "backend '%s' does not match platform '%s'", cfg.Backend, cfg.Platform)
	case cfg.Platform == PlatformSimulated && cfg.Backend == "":
	case cfg.Platform != "" && cfg.Platform != PlatformLibtorch:
		return bad("platform", "unsupported platform '%s' (only '%s', '%s' and '%s'; other model kinds are named by 'backend')", cfg.Platform, PlatformLibtorch, PlatformEnsemble, PlatformSimulated)
	case cfg.Backend == BackendPytorch && cfg.Platform == "":
		cfg.Platform = PlatformLibtorch
	}
	if cfg.GetEnsembleScheduling() != nil && cfg.Platform != PlatformEnsemble {
		return bad("ensemble_scheduling", "ensemble scheduling cannot be set for model '%s' whose platform is not %s", cfg.Name, PlatformEnsemble)
	}
	if cfg.MaxBatchSize < 0 {
		return bad("max_batch_size", "'max_batch_size' must be non-negative value")
	}
	if err := normalizeVersionPolicy(cfg, bad); err != nil {
		return err
	}
	if cfg.DefaultModelFilename == "" {
		cfg.DefaultModelFilename = DefaultModelFilename
	} else if f := cfg.DefaultModelFilename; strings.ContainsAny(f, `/\`) || f == "." || f == ".." {
		return bad("default_model_filename", "'%s' must be a plain file name", f)
	}
	if len(cfg.Input) == 0 {
		return bad("input", "model '%s' must specify at least one input", cfg.Name)
	}
	if len(cfg.Output) == 0 {
		return bad("output", "model '%s' must specify at least one output", cfg.Name)
	}
	seen := map[string]bool{}
	for i, in := range cfg.Input {
		field := fmt.Sprintf("input[%d]", i)
		if err := checkTensor(field, in.Name, in.DataType, in.Dims, in.Reshape, cfg.MaxBatchSize, seen, bad); err != nil {
			return err
		}
	}
	seen = map[string]bool{}
	for i, out := range cfg.Output {
		field := fmt.Sprintf("output[%d]", i)
		if err := checkTensor(field, out.Name, out.DataType, out.Dims, out.Reshape, cfg.MaxBatchSize, seen, bad); err != nil {
			return err
		}
		if f := out.LabelFilename; f != "" && (strings.ContainsAny(f, `/\`) || f == "." || f == "..") {
			return bad(field+".label_filename", "'%s' must be a plain file name", f)
		}
	}
	if cfg.Platform != PlatformEnsemble { // an ensemble has no instances of its own
		if err := normalizeInstanceGroups(cfg, gpuCount, bad); err != nil {
			return err
		}
	}
	if db := cfg.GetDynamicBatching(); db != nil {
		if err := normalizeDynamicBatching(cfg, db, bad); err != nil {
			return err
		}
	}
	for k := range cfg.Parameters {
		if k == "" {
			return bad("parameters", "parameter keys must not be empty")
		}
	}
	if _, _, err := backend.BatchingPolicy(cfg); err != nil {
		return bad("parameters", "%v", err)
	}
	return checkWarmup(cfg, bad)
}

type badFunc func(field, format string, args ...any) error

// normalizeEnsemble applies Triton's rules for an ensemble's own config
// (the graph itself is checked by the ensemble kind when it loads).
func normalizeEnsemble(cfg *modelconfig.ModelConfig, bad badFunc) error {
	switch {
	case cfg.Backend != "":
		return bad("backend", "Ensemble model '%s' must have platform type '%s' and empty backend type", cfg.Name, cfg.Platform)
	case cfg.GetEnsembleScheduling() == nil:
		return bad("ensemble_scheduling", "ensemble scheduling must be set for ensemble %s whose platform is %s", cfg.Name, PlatformEnsemble)
	case len(cfg.InstanceGroup) > 0:
		return bad("instance_group", "instance group should not be specified for ensemble '%s'", cfg.Name)
	}
	return nil
}

func normalizeVersionPolicy(cfg *modelconfig.ModelConfig, bad badFunc) error {
	vp := cfg.VersionPolicy
	if vp == nil || vp.PolicyChoice == nil {
		cfg.VersionPolicy = &modelconfig.ModelVersionPolicy{PolicyChoice: &modelconfig.ModelVersionPolicy_Latest_{
			Latest: &modelconfig.ModelVersionPolicy_Latest{NumVersions: 1}}}
		return nil
	}
	switch p := vp.PolicyChoice.(type) {
	case *modelconfig.ModelVersionPolicy_Latest_:
		if p.Latest == nil {
			p.Latest = &modelconfig.ModelVersionPolicy_Latest{}
		}
		if p.Latest.NumVersions == 0 {
			return bad("version_policy.latest.num_versions", "must be greater than 0")
		}
	case *modelconfig.ModelVersionPolicy_Specific_:
		if p.Specific == nil || len(p.Specific.Versions) == 0 {
			return bad("version_policy.specific.versions", "must list at least one version")
		}
		for _, v := range p.Specific.Versions {
			if v < 1 {
				return bad("version_policy.specific.versions", "version %d must be a positive integer", v)
			}
		}
	case *modelconfig.ModelVersionPolicy_All_:
		if p.All == nil {
			p.All = &modelconfig.ModelVersionPolicy_All{}
		}
	}
	return nil
}

func checkTensor(field, name string, dt modelconfig.DataType, dims []int64, reshape *modelconfig.ModelTensorReshape,
	maxBatch int32, seen map[string]bool, bad badFunc) error {
	kind := "input"
	if strings.HasPrefix(field, "output") {
		kind = "output"
	}
	if name == "" {
		return bad(field+".name", "model %s must have a name", kind)
	}
	if seen[name] {
		return bad(field+".name", "duplicate %s name '%s'", kind, name)
	}
	seen[name] = true
	if dt == modelconfig.DataType_TYPE_INVALID {
		return bad(field+".data_type", "%s '%s' must specify a valid data_type", kind, name)
	}
	if _, ok := modelconfig.DataType_name[int32(dt)]; !ok {
		return bad(field+".data_type", "%s '%s' has unknown data_type %d", kind, name, dt)
	}
	if len(dims) == 0 && !(maxBatch > 0 && reshape != nil && len(reshape.Shape) == 0) {
		return bad(field+".dims", "%s '%s' must specify 'dims'", kind, name)
	}
	for _, d := range dims {
		if d != -1 && d < 1 {
			return bad(field+".dims", "%s '%s' dimension must be integer >= 1, or -1 to indicate a variable-size dimension, got %d", kind, name, d)
		}
	}
	if reshape == nil {
		return nil
	}
	variable := 0
	for _, d := range reshape.Shape {
		if d == -1 {
			variable++
		} else if d < 1 {
			return bad(field+".reshape.shape", "%s '%s' reshape dimension must be integer >= 1, or -1, got %d", kind, name, d)
		}
	}
	if variable > 1 {
		return bad(field+".reshape.shape", "%s '%s' reshape may have at most one variable-size dimension", kind, name)
	}
	fixedDims, varDims, _ := datatype.ElementCount(dims)
	fixedRe, _, _ := datatype.ElementCount(reshape.Shape)
	if (varDims > 0) != (variable > 0) || fixedDims != fixedRe {
		return bad(field+".reshape.shape", "%s '%s' reshape %v has a different element count than dims %v", kind, name, reshape.Shape, dims)
	}
	return nil
}

func normalizeInstanceGroups(cfg *modelconfig.ModelConfig, gpuCount int, bad badFunc) error {
	if len(cfg.InstanceGroup) == 0 {
		cfg.InstanceGroup = []*modelconfig.ModelInstanceGroup{{}}
	}
	names := map[string]bool{}
	for i, g := range cfg.InstanceGroup {
		field := fmt.Sprintf("instance_group[%d]", i)
		if g.Name == "" {
			g.Name = fmt.Sprintf("%s_%d", cfg.Name, i)
		}
		if names[g.Name] {
			return bad(field+".name", "duplicate instance group name '%s'", g.Name)
		}
		names[g.Name] = true
		if g.Count < 0 {
			return bad(field+".count", "instance group %s of model %s must have count >= 1", g.Name, cfg.Name)
		}
		if g.Count == 0 {
			g.Count = 1
		}
		if g.Count > 64 {
			return bad(field+".count", "instance group %s of model %s has count %d, at most 64 allowed", g.Name, cfg.Name, g.Count)
		}
		switch g.Kind {
		case modelconfig.ModelInstanceGroup_KIND_CPU, modelconfig.ModelInstanceGroup_KIND_MODEL:
			if len(g.Gpus) > 0 {
				return bad(field+".gpus", "instance group %s of model %s has kind %s but specifies one or more GPUs", g.Name, cfg.Name, g.Kind)
			}
		case modelconfig.ModelInstanceGroup_KIND_AUTO:
			if len(g.Gpus) > 0 || gpuCount > 0 {
				g.Kind = modelconfig.ModelInstanceGroup_KIND_GPU
			} else {
				g.Kind = modelconfig.ModelInstanceGroup_KIND_CPU
			}
		case modelconfig.ModelInstanceGroup_KIND_GPU:
			if len(g.Gpus) == 0 && gpuCount == 0 {
				return bad(field+".kind", "instance group %s of model %s has kind KIND_GPU but no GPUs are available", g.Name, cfg.Name)
			}
		default:
			return bad(field+".kind", "instance group %s of model %s has unknown kind %d", g.Name, cfg.Name, g.Kind)
		}
		if g.Kind == modelconfig.ModelInstanceGroup_KIND_GPU {
			if len(g.Gpus) == 0 {
				for d := range gpuCount {
					g.Gpus = append(g.Gpus, int32(d))
				}
			}
			for _, d := range g.Gpus {
				if d < 0 || int(d) >= gpuCount {
					return bad(field+".gpus", "instance group %s of model %s specifies invalid or unsupported gpu id %d (%d GPUs available)", g.Name, cfg.Name, d, gpuCount)
				}
			}
		}
	}
	return nil
}

func normalizeDynamicBatching(cfg *modelconfig.ModelConfig, db *modelconfig.ModelDynamicBatching, bad badFunc) error {
	const f = "dynamic_batching"
	for _, p := range db.PreferredBatchSize {
		if p <= 0 {
			return bad(f+".preferred_batch_size", "dynamic batching preferred size must be positive")
		}
		if p > cfg.MaxBatchSize {
			return bad(f+".preferred_batch_size", "dynamic batching preferred size must be <= max batch size")
		}
	}
	if len(db.PreferredBatchSize) == 0 && cfg.MaxBatchSize > 0 {
		db.PreferredBatchSize = []int32{cfg.MaxBatchSize}
	}
	slices.Sort(db.PreferredBatchSize)
	db.PreferredBatchSize = slices.Compact(db.PreferredBatchSize)
	// A delay beyond an hour is certainly a unit mistake, and would overflow
	// time.Duration arithmetic well before uint64 does.
	const maxMicros = uint64(3600 * 1e6)
	if db.MaxQueueDelayMicroseconds > maxMicros {
		return bad(f+".max_queue_delay_microseconds", "must be at most %d", maxMicros)
	}
	if db.PriorityLevels != 0 {
		if db.DefaultPriorityLevel < 1 || db.DefaultPriorityLevel > db.PriorityLevels {
			return bad(f+".default_priority_level", "default priority level must be in range [1, %d]", db.PriorityLevels)
		}
	} else if db.DefaultPriorityLevel != 0 {
		return bad(f+".default_priority_level", "default priority level must be 0 when 'priority_levels' is 0")
	}
	if db.PreserveOrdering && db.PriorityLevels > 1 {
		return bad(f+".preserve_ordering", "Only one priority level is allowed when 'preserve_ordering' is true")
	}
	checkPolicy := func(field string, p *modelconfig.ModelQueuePolicy) error {
		if p == nil {
			return nil
		}
		if p.DefaultTimeoutMicroseconds > maxMicros {
			return bad(field+".default_timeout_microseconds", "must be at most %d", maxMicros)
		}
		if db.PreserveOrdering && p.TimeoutAction == modelconfig.ModelQueuePolicy_DELAY && p.DefaultTimeoutMicroseconds != 0 {
			return bad(field+".timeout_action", "Queue policy can not have DELAY as timeout action when 'preserve_ordering' is true")
		}
		if _, ok := modelconfig.ModelQueuePolicy_TimeoutAction_name[int32(p.TimeoutAction)]; !ok {
			return bad(field+".timeout_action", "unknown timeout action %d", p.TimeoutAction)
		}
		return nil
	}
	if err := checkPolicy(f+".default_queue_policy", db.DefaultQueuePolicy); err != nil {
		return err
	}
	for level, p := range db.PriorityQueuePolicy {
		if level < 1 || level > db.PriorityLevels {
			return bad(f+".priority_queue_policy", "priority queue policy must have priority level in range [1, %d], got %d", db.PriorityLevels, level)
		}
		if err := checkPolicy(fmt.Sprintf("%s.priority_queue_policy[%d]", f, level), p); err != nil {
			return err
		}
	}
	return nil
}

// cloneConfig returns a deep copy of cfg.
func cloneConfig(cfg *modelconfig.ModelConfig) *modelconfig.ModelConfig {
	return proto.Clone(cfg).(*modelconfig.ModelConfig)
}
