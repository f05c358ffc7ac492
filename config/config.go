package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/weir-stream/weir/component"
)

// Load reads, substitutes, validates and returns the config file at path.
// Environment variables come from the process. A config problem is returned
// as Errors (every problem, sorted by line).
func Load(path string) (*Root, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse is Load for a file already read: file names it in errors (and
// gives the default pipeline_id), lookupEnv resolves ${VAR} (nil means the
// process environment).
//
// Validation runs in two passes. The first checks the shape of the file
// against RootFields and every component's spec: unknown keys, wrong
// types, options, missing required fields, unknown component types. When
// that is clean, the second checks values against each other (ranges,
// s3_config.bucket for S3 backends, unique stream names). Either pass
// reports all it finds.
func Parse(file string, data []byte, lookupEnv func(string) (string, bool)) (*Root, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	text, errs := substituteEnv(file, data, lookupEnv)
	if errs != nil {
		errs.sort()
		return nil, errs
	}
	doc, ferr := parseYAML(file, text)
	if ferr != nil {
		return nil, Errors{ferr}
	}
	v := &validator{file: file}
	line := lineOr(doc, 1)
	if doc.Kind != yaml.MappingNode {
		v.errorf(line, "", "expected a mapping of top-level keys (%s), got %s", rootKeyList(), describe(doc))
		return nil, v.errs
	}
	vals, lines := v.object(doc, "", line, RootFields(), "")
	if len(v.errs) > 0 {
		v.errs.sort()
		return nil, v.errs
	}
	rootConf := component.NewConfig(file, "", line, "", vals, lines)
	root := v.build(rootConf)
	if len(v.errs) > 0 {
		v.errs.sort()
		return nil, v.errs
	}
	if root.State.Enabled {
		cp := component.CheckpointSettings{
			Interval:          time.Duration(root.State.CheckpointIntervalMs) * time.Millisecond,
			Timeout:           time.Duration(root.State.CheckpointTimeoutMs) * time.Millisecond,
			TolerableFailures: root.State.TolerableFailedCheckpoints,
		}
		for _, st := range root.Streams {
			for _, c := range []*component.Config{st.Output, st.ErrorOutput} {
				if c == nil {
					continue
				}
				reg := component.Lookup(component.KindOutput, c.Type)
				if reg == nil || reg.Spec.CheckCheckpoints == nil {
					continue
				}
				if err := reg.Spec.CheckCheckpoints(c, cp); err != nil {
					var fe *component.FieldError
					if errors.As(err, &fe) {
						v.errs = append(v.errs, fe)
					} else {
						v.errs = append(v.errs, &component.FieldError{File: file, Line: c.Line, Path: c.Path, Msg: err.Error()})
					}
				}
			}
		}
		if len(v.errs) > 0 {
			v.errs.sort()
			return nil, v.errs
		}
	}
	root.Warnings = warnings(root, rootConf.Object(keyState))
	return root, nil
}

// ParseComponent validates one component written in YAML — a mapping with
// `type: NAME` and NAME's fields beside it — against NAME's registered spec,
// and returns its Config with defaults applied, exactly as a config file
// would give it to the constructor. There is no ${VAR} substitution. Errors
// name the file "component.yaml" and the key path kind (e.g. "input.path").
// Tests of components use it to build their configs.
func ParseComponent(kind component.Kind, text string) (*component.Config, error) {
	const file = "component.yaml"
	doc, ferr := parseYAML(file, []byte(text))
	if ferr != nil {
		return nil, Errors{ferr}
	}
	v := &validator{file: file}
	c := v.component(doc, string(kind), lineOr(doc, 1), kind)
	if len(v.errs) > 0 {
		v.errs.sort()
		return nil, v.errs
	}
	return c, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserProblems are the yaml.v3 parser's (not scanner's) messages: it
// reports their line counting from 0.
var yamlParserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected <document start>": true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"found duplicate %YAML directive":        true,
	"found duplicate %TAG directive":         true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// parseYAML parses the single YAML document of a file.
func parseYAML(file string, text []byte) (*yaml.Node, *component.FieldError) {
	dec := yaml.NewDecoder(bytes.NewReader(text))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &component.FieldError{File: file, Msg: fmt.Sprintf("empty config: expected a mapping of top-level keys (%s)", rootKeyList())}
		}
		return nil, yamlError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &component.FieldError{File: file, Line: extra.Line, Msg: "a second YAML document (---): expected one document per config file"}
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(file, err)
	}
	if len(doc.Content) == 0 {
		return nil, &component.FieldError{File: file, Msg: fmt.Sprintf("empty config: expected a mapping of top-level keys (%s)", rootKeyList())}
	}
	return doc.Content[0], nil
}

func yamlError(file string, err error) *component.FieldError {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if yamlParserProblems[m[2]] {
			line++
		}
		return &component.FieldError{File: file, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	return &component.FieldError{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

func rootKeyList() string {
	var names []string
	for _, f := range RootFields() {
		names = append(names, f.Name)
	}
	return strings.Join(names, ", ")
}

// build fills a Root from the validated top-level values and checks values
// against each other (the second pass).
func (v *validator) build(c *component.Config) *Root {
	root := &Root{File: c.File, ShutdownTimeout: c.Duration(keyShutdownTimeout)}
	lg := c.Object(keyLogging)
	root.Logging = Logging{Level: lg.String(keyLevel), Format: lg.String(keyFormat), FilePath: lg.String(keyFilePath)}
	hc := c.Object(keyHealthCheck)
	root.HealthCheck = HealthCheck{Enabled: hc.Bool(keyEnabled), Address: hc.String(keyAddress)}
	root.State = v.buildState(c.Object(keyState), c.File)

	streams := c.ObjectList(keyStreams)
	if len(streams) == 0 {
		v.errorf(c.FieldLine(keyStreams), keyStreams, "expected a non-empty list of streams")
	}
	names := map[string]int{}
	for i, s := range streams {
		st := Stream{
			Name:        s.String(keyName),
			Index:       i,
			Input:       s.Object(keyInput),
			Output:      s.Object(keyOutput),
			ErrorOutput: s.Object(keyErrorOutput),
			Buffer:      s.Object(keyBuffer),
			Line:        s.Line,
		}
		if st.Name == "" {
			st.Name = fmt.Sprintf("stream-%d", i)
		}
		if first, dup := names[st.Name]; dup {
			v.add(s.Errorf(keyName, "duplicate stream name %q (also streams[%d])", st.Name, first))
		}
		names[st.Name] = i
		p := s.Object(keyPipeline)
		st.Pipeline = Pipeline{ThreadNum: p.Int(keyThreadNum), Processors: p.ObjectList(keyProcessors)}
		if st.Pipeline.ThreadNum < 1 {
			v.add(p.Errorf(keyThreadNum, "expected an integer >= 1, got %d", st.Pipeline.ThreadNum))
		}
		root.Streams = append(root.Streams, st)
	}
	return root
}

var safeID = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

func (v *validator) buildState(c *component.Config, file string) State {
	st := State{
		Enabled:                    c.Bool(keyEnabled),
		BackendType:                c.String(keyBackendType),
		StateDir:                   c.String(keyStateDir),
		PipelineID:                 c.String(keyPipelineID),
		CheckpointIntervalMs:       int64(c.Int(keyCheckpointInterval)),
		CheckpointTimeoutMs:        int64(c.Int(keyCheckpointTimeout)),
		MinPauseBetweenMs:          int64(c.Int(keyMinPause)),
		TolerableFailedCheckpoints: c.Int(keyTolerableFailed),
		RetainedCheckpoints:        c.Int(keyRetainedCheckpoints),
		ExactlyOnce:                c.Bool(keyExactlyOnce),
		MaxKeyGroups:               c.Int(keyMaxKeyGroups),
		FullCheckpointEvery:        c.Int(keyFullCheckpointEvery),
		TransactionLogSync:         c.String(keyTxnLogSync),
		TransactionLogSyncMs:       int64(c.Int(keyTxnLogSyncInterval)),
		Line:                       c.Line,
	}
	if st.PipelineID == "" {
		st.PipelineID = defaultPipelineID(file)
	} else if !safeID.MatchString(st.PipelineID) || st.PipelineID == "." || st.PipelineID == ".." {
		v.add(c.Errorf(keyPipelineID, "expected letters, digits, '.', '_' or '-' (it names a directory), got %q", st.PipelineID))
	}
	atLeast := func(key string, got int64, min int64) {
		if got < min {
			v.add(c.Errorf(key, "expected an integer >= %d, got %d", min, got))
		}
	}
	atLeast(keyCheckpointInterval, st.CheckpointIntervalMs, 1)
	atLeast(keyCheckpointTimeout, st.CheckpointTimeoutMs, 1)
	atLeast(keyMinPause, st.MinPauseBetweenMs, 0)
	atLeast(keyTolerableFailed, int64(st.TolerableFailedCheckpoints), 0)
	atLeast(keyRetainedCheckpoints, int64(st.RetainedCheckpoints), 1)
	atLeast(keyFullCheckpointEvery, int64(st.FullCheckpointEvery), 1)
	if g := int64(st.MaxKeyGroups); g < 1 || g > maxKeyGroupsLimit {
		v.add(c.Errorf(keyMaxKeyGroups, "expected an integer from 1 to %d, got %d", maxKeyGroupsLimit, g))
	}

	if s3 := c.Object(keyS3Config); s3 != nil {
		st.S3 = &S3Config{
			Bucket:          s3.String(keyBucket),
			Region:          s3.String(keyRegion),
			Prefix:          s3.String(keyPrefix),
			Endpoint:        s3.String(keyEndpoint),
			UseSSL:          s3.Bool(keyUseSSL),
			AccessKeyID:     s3.String(keyAccessKeyID),
			SecretAccessKey: s3.String(keySecretAccessKey),
			SessionToken:    s3.String(keySessionToken),
		}
		if s3.Has(keyForcePathStyle) {
			st.S3.ForcePathStyle = s3.Bool(keyForcePathStyle)
		} else {
			st.S3.ForcePathStyle = st.S3.Endpoint != ""
		}
	}
	if st.BackendType == BackendS3 || st.BackendType == BackendHybrid {
		switch {
		case st.S3 == nil:
			v.errorf(c.FieldLine(keyBackendType), join(c.Path, keyS3Config+"."+keyBucket), "required when state.backend_type is %s", st.BackendType)
		case st.S3.Bucket == "":
			v.add(c.Object(keyS3Config).Errorf(keyBucket, "required when state.backend_type is %s", st.BackendType))
		}
	}
	return st
}

// defaultPipelineID is the config file's base name without extension, with
// characters unfit for a directory name replaced by '-'.
func defaultPipelineID(file string) string {
	base := filepath.Base(file)
	base = strings.TrimSuffix(base, filepath.Ext(base))
	id := strings.Map(func(r rune) rune {
		if r < 128 && safeID.MatchString(string(r)) {
			return r
		}
		return '-'
	}, base)
	if id == "" || id == "." || id == ".." || id == "-" {
		return "pipeline"
	}
	return id
}

func (v *validator) add(err error) {
	var fe *component.FieldError
	if errors.As(err, &fe) {
		v.errs = append(v.errs, fe)
		return
	}
	v.errs = append(v.errs, &component.FieldError{File: v.file, Msg: err.Error()})
}

// warnings are findings that do not stop a config from running but
// probably are not what its author meant.
func warnings(root *Root, stateConf *component.Config) []string {
	var out []string
	warn := func(c *component.Config, field, format string, args ...any) {
		var fe *component.FieldError
		if errors.As(c.Errorf(field, format, args...), &fe) {
			out = append(out, formatFieldError(fe))
		}
	}
	st := root.State
	if st.ExactlyOnce && !st.Enabled {
		warn(stateConf, keyExactlyOnce, "true but state.enabled is false: no checkpoints are taken, so delivery is at-least-once")
	}
	// An s3_config whose bucket comes out empty (a template filled from
	// unset variables) is not worth a warning.
	if st.S3 != nil && st.S3.Bucket != "" && st.BackendType != BackendS3 && st.BackendType != BackendHybrid {
		warn(stateConf, keyS3Config, "set but backend_type %s does not use S3", st.BackendType)
	}
	for _, s := range root.Streams {
		for _, c := range []*component.Config{s.Output, s.ErrorOutput} {
			if c == nil {
				continue
			}
			reg := component.Lookup(component.KindOutput, c.Type)
			if reg == nil {
				continue
			}
			// Outputs that can commit transactionally have a bool field
			// exactly_once that turns it on.
			f := reg.Spec.Field(keyExactlyOnce)
			hasEO := f != nil && f.Type == component.TypeBool
			eo := hasEO && c.Bool(keyExactlyOnce)
			switch {
			case st.ExactlyOnce && hasEO && !eo:
				warn(c, keyExactlyOnce, "false while state.exactly_once is true: output %q writes at-least-once", c.Type)
			case st.ExactlyOnce && !eo && reg.Spec.Delivery == component.DeliveryAtLeastOnce:
				warn(c, "", "state.exactly_once is true but output %q is at-least-once", c.Type)
			case eo && !st.Enabled:
				warn(c, keyExactlyOnce, "true but state.enabled is false: no checkpoints are taken for output %q to commit at", c.Type)
			}
		}
	}
	return out
}
