package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/config"
)

// Fake components. The registry is global to the test binary, and no real
// component package is imported here, so these may use real-looking names.
func init() {
	noInput := func(*component.Config, component.Resources) (component.Input, error) { return nil, nil }
	noProc := func(*component.Config, component.Resources) (component.Processor, error) { return nil, nil }
	noOutput := func(*component.Config, component.Resources) (component.Output, error) { return nil, nil }

	component.RegisterInput(component.Spec{Name: "file", Summary: "Reads a file.", Bounded: true, Fields: []component.Field{
		{Name: "path", Type: component.TypeString, Required: true, Description: "File to read."},
		{Name: "format", Type: component.TypeString, Default: "lines", Options: []string{"lines", "ndjson", "csv"}, Description: "Record format."},
		{Name: "poll_interval", Type: component.TypeDuration, Default: "1s", Description: "How often to look for new data."},
	}}, noInput)
	component.RegisterInput(component.Spec{Name: "kafka", Summary: "Reads Kafka topics.", Fields: []component.Field{
		{Name: "brokers", Type: component.TypeList, Elem: component.TypeString, Required: true, Description: "Seed brokers."},
		{Name: "topics", Type: component.TypeList, Elem: component.TypeString, Required: true, Description: "Topics."},
		{Name: "client_id", Type: component.TypeString, Default: "weir", Description: "Client id."},
		{Name: "consumer_group", Type: component.TypeString, Description: "Consumer group."},
		{Name: "start_from_oldest", Type: component.TypeBool, Default: true, Description: "Start at the oldest offset."},
		{Name: "fetch_max_bytes", Type: component.TypeInt, Default: 1 << 20, Description: "Max bytes per fetch."},
	}}, noInput)
	component.RegisterProcessor(component.Spec{Name: "mapping", Summary: "Maps records.", Fields: []component.Field{
		{Name: "expression", Type: component.TypeExpr, Required: true, Description: "Expression."},
	}}, noProc)
	component.RegisterProcessor(component.Spec{Name: "tumbling_window", Summary: "Windows.", Stateful: true, Fields: []component.Field{
		{Name: "size", Type: component.TypeDuration, Required: true, Description: "Window size."},
		{Name: "key", Type: component.TypeExpr, Description: "Key expression."},
	}}, noProc)
	component.RegisterProcessor(component.Spec{Name: "enrich", Summary: "Enriches records.", Fields: []component.Field{
		{Name: "headers", Type: component.TypeMap, Elem: component.TypeString, Description: "Headers."},
		{Name: "ratio", Type: component.TypeFloat, Default: 0.5, Description: "Ratio."},
		{Name: "rules", Type: component.TypeList, Description: "Rules.", Fields: []component.Field{
			{Name: "name", Type: component.TypeString, Required: true, Description: "Rule name."},
			{Name: "weight", Type: component.TypeFloat, Default: 1, Description: "Weight."},
			{Name: "timeout", Type: component.TypeDuration, Default: 250 * time.Millisecond, Description: "Timeout."},
		}},
		{Name: "retry", Type: component.TypeObject, Description: "Retries.", Fields: []component.Field{
			{Name: "max_attempts", Type: component.TypeInt, Default: 3, Description: "Attempts."},
			{Name: "backoff", Type: component.TypeDuration, Default: "100ms", Description: "Backoff."},
		}},
		{Name: "extra", Type: component.TypeAny, Description: "Anything."},
	}}, noProc)
	component.RegisterOutput(component.Spec{Name: "drop", Summary: "Discards.", Delivery: component.DeliveryNotDelivered}, noOutput)
	component.RegisterOutput(component.Spec{Name: "file", Summary: "Writes a file.", Delivery: component.DeliveryExactlyOnce, Fields: []component.Field{
		{Name: "path", Type: component.TypeString, Required: true, Description: "File to write."},
		{Name: "exactly_once", Type: component.TypeBool, Default: false, Description: "Stage and commit part files."},
	}}, noOutput)
	component.RegisterOutput(component.Spec{Name: "http", Summary: "POSTs batches.", Delivery: component.DeliveryAtLeastOnce, Fields: []component.Field{
		{Name: "url", Type: component.TypeString, Required: true, Description: "URL."},
	}}, noOutput)
	component.RegisterOutput(component.Spec{Name: "kafka", Summary: "Writes to Kafka.", Delivery: component.DeliveryExactlyOnce, Fields: []component.Field{
		{Name: "brokers", Type: component.TypeList, Elem: component.TypeString, Required: true, Description: "Seed brokers."},
		{Name: "topic", Type: component.TypeString, Required: true, Description: "Topic."},
		{Name: "exactly_once", Type: component.TypeBool, Default: false, Description: "Transactions."},
	}}, noOutput)
	component.RegisterOutput(component.Spec{Name: "stdout", Summary: "Writes to stdout.", Delivery: component.DeliveryAtLeastOnce, Fields: []component.Field{
		{Name: "format", Type: component.TypeString, Default: "lines", Options: []string{"lines", "ndjson"}, Description: "Format."},
	}}, noOutput)
}

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

const minimal = `
streams:
  - input:
      type: file
      path: in.txt
    output:
      type: stdout
`

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		env  map[string]string
		want string
	}{
		{
			name: "int field given a word",
			yaml: `streams:
  - input:
      type: file
      path: in.txt
    pipeline:
      thread_num: four
    output:
      type: stdout
`,
			want: `pipeline.yaml:6: streams[0].pipeline.thread_num: expected an integer, got "four"`,
		},
		{
			name: "unknown component key",
			yaml: `streams:
  - input:
      type: kafka
      brokerz: [localhost:9092]
      topics: [t]
    output: {type: stdout}
`,
			want: `pipeline.yaml:2: streams[0].input: missing required field "brokers"
pipeline.yaml:4: streams[0].input.brokerz: unknown key; expected one of: brokers, client_id, consumer_group, fetch_max_bytes, start_from_oldest, topics; did you mean "brokers"?`,
		},
		{
			name: "unknown output type",
			yaml: minimal[:len(minimal)-len("stdout\n")] + "kafak\n",
			want: `pipeline.yaml:7: streams[0].output.type: unknown output type "kafak"; expected one of: drop, file, http, kafka, stdout; did you mean "kafka"?`,
		},
		{
			name: "component without type",
			yaml: `streams:
  - input:
      path: in.txt
    output:
      type: drop
`,
			want: `pipeline.yaml:2: streams[0].input: missing required field "type"`,
		},
		{
			name: "missing required component field",
			yaml: `streams:
  - input:
      type: file
    output:
      type: file
`,
			want: `pipeline.yaml:2: streams[0].input: missing required field "path"
pipeline.yaml:4: streams[0].output: missing required field "path"`,
		},
		{
			name: "option not allowed",
			yaml: `streams:
  - input:
      type: file
      path: in.txt
      format: xml
    output: {type: drop}
`,
			want: `pipeline.yaml:5: streams[0].input.format: expected one of: lines, ndjson, csv, got "xml"`,
		},
		{
			name: "option with near miss",
			yaml: `state:
  backend_type: memory
` + minimal,
			want: `pipeline.yaml:2: state.backend_type: expected one of: Memory, Hybrid, S3, Pebble, got "memory"; did you mean "Memory"?`,
		},
		{
			name: "no streams",
			yaml: `logging:
  level: debug
`,
			want: `pipeline.yaml:1: missing required field "streams"`,
		},
		{
			name: "empty streams",
			yaml: "streams: []\n",
			want: `pipeline.yaml:1: streams: expected a non-empty list of streams`,
		},
		{
			name: "unknown top-level key",
			yaml: "stream:\n  - input: {type: file, path: x}\n",
			want: `pipeline.yaml:1: stream: unknown key; expected one of: health_check, logging, shutdown_timeout, state, streams; did you mean "streams"?
pipeline.yaml:1: missing required field "streams"`,
		},
		{
			name: "unset environment variable",
			yaml: `streams:
  - input:
      type: kafka
      brokers: ["${KAFKA_BROKERS}"]
      topics: ["${TOPIC:events}", "${OTHER}"]
    output: {type: drop}
`,
			want: `pipeline.yaml:4: environment variable KAFKA_BROKERS is not set (write ${KAFKA_BROKERS:default} to give a default)
pipeline.yaml:5: environment variable OTHER is not set (write ${OTHER:default} to give a default)`,
		},
		{
			name: "yaml syntax",
			yaml: "streams:\n  - input: {type: file\n    output: {type: drop}\n",
			want: `pipeline.yaml:2: invalid YAML: did not find expected ',' or '}'`,
		},
		{
			name: "yaml indentation",
			yaml: "streams:\n  - input: {type: file, path: x}\n output: {type: drop}\n",
			want: `pipeline.yaml:3: invalid YAML: did not find expected key`,
		},
		{
			name: "yaml tab",
			yaml: "streams:\n\t- input: {type: file, path: x}\n",
			want: `pipeline.yaml:2: invalid YAML: found character that cannot start any token`,
		},
		{
			name: "s3 bucket required",
			yaml: `state:
  enabled: true
  backend_type: S3
  s3_config:
    region: eu-west-1
` + minimal,
			want: `pipeline.yaml:4: state.s3_config.bucket: required when state.backend_type is S3`,
		},
		{
			name: "s3 config missing",
			yaml: "state:\n  backend_type: Hybrid\n" + minimal,
			want: `pipeline.yaml:2: state.s3_config.bucket: required when state.backend_type is Hybrid`,
		},
		{
			name: "state ranges",
			yaml: `state:
  checkpoint_timeout_ms: 0
  retained_checkpoints: 0
  max_key_groups: 40000
  pipeline_id: ../etc
` + minimal,
			want: `pipeline.yaml:2: state.checkpoint_timeout_ms: expected an integer >= 1, got 0
pipeline.yaml:3: state.retained_checkpoints: expected an integer >= 1, got 0
pipeline.yaml:4: state.max_key_groups: expected an integer from 1 to 32768, got 40000
pipeline.yaml:5: state.pipeline_id: expected letters, digits, '.', '_' or '-' (it names a directory), got "../etc"`,
		},
		{
			name: "bad duration and bool",
			yaml: `shutdown_timeout: 5 seconds
health_check:
  enabled: yes
` + minimal,
			want: `pipeline.yaml:1: shutdown_timeout: expected a duration ("1s", "250ms", "1m30s") or an integer of milliseconds, got "5 seconds"
pipeline.yaml:3: health_check.enabled: expected true or false, got "yes"`,
		},
		{
			name: "scalar where a list is expected",
			yaml: `streams:
  - input:
      type: kafka
      brokers: localhost:9092
      topics: [a, [b]]
    output: {type: drop}
`,
			want: `pipeline.yaml:4: streams[0].input.brokers: expected a list, got "localhost:9092"
pipeline.yaml:5: streams[0].input.topics[1]: expected a string, got a list`,
		},
		{
			name: "duplicate key",
			yaml: `streams:
  - input:
      type: file
      path: a.txt
      path: b.txt
    output: {type: drop}
`,
			want: `pipeline.yaml:5: streams[0].input.path: duplicate key (first set on line 4)`,
		},
		{
			name: "bad processors and buffer",
			yaml: `streams:
  - input: {type: file, path: in.txt}
    pipeline:
      processors:
        - type: mapping
          expression: this
        - type: mapping
        - json
    buffer:
      type: sliding_window
    output: {type: drop}
`,
			want: `pipeline.yaml:7: streams[0].pipeline.processors[1]: missing required field "expression"
pipeline.yaml:8: streams[0].pipeline.processors[2]: expected a processor (a mapping with type: NAME), got "json"
pipeline.yaml:10: streams[0].buffer.type: unknown processor type "sliding_window"; expected one of: enrich, mapping, tumbling_window`,
		},
		{
			name: "nested objects and lists of objects",
			yaml: `streams:
  - input: {type: file, path: in.txt}
    pipeline:
      processors:
        - type: enrich
          ratio: high
          headers: {a: b, c: [d]}
          retry: {max_attempts: 2, backof: 1s}
          rules:
            - name: a
            - weight: 2
    output: {type: drop}
`,
			want: `pipeline.yaml:6: streams[0].pipeline.processors[0].ratio: expected a number, got "high"
pipeline.yaml:7: streams[0].pipeline.processors[0].headers.c: expected a string, got a list
pipeline.yaml:8: streams[0].pipeline.processors[0].retry.backof: unknown key; expected one of: backoff, max_attempts; did you mean "backoff"?
pipeline.yaml:11: streams[0].pipeline.processors[0].rules[1]: missing required field "name"`,
		},
		{
			name: "duplicate stream names and zero threads",
			yaml: `streams:
  - name: a
    input: {type: file, path: in.txt}
    output: {type: drop}
  - name: a
    input: {type: file, path: in.txt}
    pipeline: {thread_num: 0}
    output: {type: drop}
`,
			want: `pipeline.yaml:5: streams[1].name: duplicate stream name "a" (also streams[0])
pipeline.yaml:7: streams[1].pipeline.thread_num: expected an integer >= 1, got 0`,
		},
		{
			name: "component given a scalar and required null",
			yaml: `streams:
  - input: file
    output:
      type: http
      url:
`,
			want: `pipeline.yaml:2: streams[0].input: expected an input (a mapping with type: NAME), got "file"
pipeline.yaml:5: streams[0].output.url: expected a string, got null`,
		},
		{
			name: "not a mapping",
			yaml: "- a\n- b\n",
			want: `pipeline.yaml:1: expected a mapping of top-level keys (logging, health_check, shutdown_timeout, state, streams), got a list`,
		},
		{
			name: "two documents",
			yaml: minimal + "---\nstreams: []\n",
			want: `pipeline.yaml:8: a second YAML document (---): expected one document per config file`,
		},
		{
			name: "empty file",
			yaml: "# nothing here\n",
			want: `pipeline.yaml: empty config: expected a mapping of top-level keys (logging, health_check, shutdown_timeout, state, streams)`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, err := config.Parse("pipeline.yaml", []byte(tc.yaml), env(tc.env))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want error:\n%s", root, tc.want)
			}
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want config.Errors: %v", err, err)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	root, err := config.Parse("configs/word-count.yaml", []byte(minimal), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if root.File != "configs/word-count.yaml" {
		t.Errorf("File = %q", root.File)
	}
	if want := (config.Logging{Level: "info", Format: "plain"}); root.Logging != want {
		t.Errorf("Logging = %+v, want %+v", root.Logging, want)
	}
	if want := (config.HealthCheck{Enabled: true, Address: "0.0.0.0:8080"}); root.HealthCheck != want {
		t.Errorf("HealthCheck = %+v, want %+v", root.HealthCheck, want)
	}
	if root.ShutdownTimeout != 30*time.Second {
		t.Errorf("ShutdownTimeout = %v", root.ShutdownTimeout)
	}
	wantState := config.State{
		BackendType:                "Memory",
		StateDir:                   "./weir-state",
		PipelineID:                 "word-count",
		CheckpointIntervalMs:       60000,
		CheckpointTimeoutMs:        600000,
		TolerableFailedCheckpoints: 3,
		RetainedCheckpoints:        3,
		MaxKeyGroups:               128,
		FullCheckpointEvery:        10,
		TransactionLogSync:         "group_commit",
		TransactionLogSyncMs:       50,
		Line:                       2, // the root mapping's: state is absent
	}
	if !reflect.DeepEqual(root.State, wantState) {
		t.Errorf("State = %+v\nwant    %+v", root.State, wantState)
	}
	if len(root.Streams) != 1 {
		t.Fatalf("%d streams", len(root.Streams))
	}
	s := root.Streams[0]
	if s.Name != "stream-0" || s.Index != 0 || s.Line != 3 || s.Pipeline.ThreadNum != 1 || len(s.Pipeline.Processors) != 0 {
		t.Errorf("stream = %+v", s)
	}
	if s.ErrorOutput != nil || s.Buffer != nil {
		t.Errorf("optional components set: %+v", s)
	}
	in := s.Input
	if in.Type != "file" || in.Path != "streams[0].input" || in.Line != 3 || in.File != "configs/word-count.yaml" {
		t.Errorf("input = %+v", in)
	}
	if in.String("path") != "in.txt" || in.String("format") != "lines" || in.Duration("poll_interval") != time.Second {
		t.Errorf("input values = %v", in.Values())
	}
	if in.FieldLine("path") != 5 || in.FieldLine("format") != 3 {
		t.Errorf("field lines: path %d, format %d", in.FieldLine("path"), in.FieldLine("format"))
	}
	if got := in.Errorf("path", "no such file").Error(); got != "configs/word-count.yaml:5: streams[0].input.path: no such file" {
		t.Errorf("Errorf = %q", got)
	}
	if s.Output.Type != "stdout" || s.Output.String("format") != "lines" {
		t.Errorf("output = %+v %v", s.Output, s.Output.Values())
	}
	if len(root.Warnings) != 0 {
		t.Errorf("warnings: %q", root.Warnings)
	}
}

func TestParseFull(t *testing.T) {
	const text = `# a full config
logging:
  level: ${LOG_LEVEL:warn}
  format: json
  file_path: ${LOG_DIR}/weir.log
health_check:
  enabled: false
  address: 127.0.0.1:${PORT:9090}
shutdown_timeout: 1m30s
state:
  enabled: true
  backend_type: S3
  state_dir: /var/lib/weir
  pipeline_id: orders
  checkpoint_interval_ms: 5000
  retained_checkpoints: 10
  exactly_once: true
  max_key_groups: 1024
  s3_config:
    bucket: "my-app-state"
    prefix: prod/checkpoints
    endpoint: http://127.0.0.1:9000
    use_ssl: false
streams:
  - name: orders
    input:
      <<: &kafka {type: kafka, brokers: [a:9092, b:9092], topics: [x]}
      topics: [orders]
      start_from_oldest: "false"
    pipeline:
      thread_num: "${THREADS:4}"
      processors:
        - type: mapping
          expression: 'root = this ~ "$${literal}"'
        - type: enrich
          headers: {X-A: "1", X-B: two}
          ratio: 2
          rules:
            - name: first
            - name: second
              weight: 0.25
              timeout: 1500
          retry:
            max_attempts: 5
          extra: {a: [1, 2.5, true, null, x]}
    buffer:
      type: tumbling_window
      size: 10s
    output:
      type: stdout
    error_output:
      type: file
      path: errors.ndjson
      exactly_once: true
  - input:
      <<: *kafka
      client_id: second
    output: {type: drop}
`
	root, err := config.Parse("pipeline.yaml", []byte(text), env(map[string]string{"LOG_DIR": "/var/log", "LOG_LEVEL": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if want := (config.Logging{Level: "warn", Format: "json", FilePath: "/var/log/weir.log"}); root.Logging != want {
		t.Errorf("Logging = %+v, want %+v", root.Logging, want)
	}
	if want := (config.HealthCheck{Enabled: false, Address: "127.0.0.1:9090"}); root.HealthCheck != want {
		t.Errorf("HealthCheck = %+v, want %+v", root.HealthCheck, want)
	}
	if root.ShutdownTimeout != 90*time.Second {
		t.Errorf("ShutdownTimeout = %v", root.ShutdownTimeout)
	}
	st := root.State
	if !st.Enabled || st.BackendType != "S3" || st.StateDir != "/var/lib/weir" || st.PipelineID != "orders" ||
		st.CheckpointIntervalMs != 5000 || st.RetainedCheckpoints != 10 || !st.ExactlyOnce || st.MaxKeyGroups != 1024 {
		t.Errorf("State = %+v", st)
	}
	wantS3 := config.S3Config{Bucket: "my-app-state", Region: "us-east-1", Prefix: "prod/checkpoints",
		Endpoint: "http://127.0.0.1:9000", UseSSL: false, ForcePathStyle: true}
	if st.S3 == nil || *st.S3 != wantS3 {
		t.Errorf("S3 = %+v, want %+v", st.S3, wantS3)
	}

	s := root.Streams[0]
	if s.Name != "orders" || s.Pipeline.ThreadNum != 4 {
		t.Errorf("stream = %+v", s)
	}
	in := s.Input
	if in.Type != "kafka" || !reflect.DeepEqual(in.StringList("brokers"), []string{"a:9092", "b:9092"}) ||
		!reflect.DeepEqual(in.StringList("topics"), []string{"orders"}) || in.Bool("start_from_oldest") ||
		in.String("client_id") != "weir" || in.Int("fetch_max_bytes") != 1<<20 {
		t.Errorf("input = %v", in.Values())
	}
	if len(s.Pipeline.Processors) != 2 {
		t.Fatalf("%d processors", len(s.Pipeline.Processors))
	}
	m := s.Pipeline.Processors[0]
	if m.Type != "mapping" || m.Path != "streams[0].pipeline.processors[0]" || m.String("expression") != `root = this ~ "${literal}"` {
		t.Errorf("mapping = %+v %v", m, m.Values())
	}
	e := s.Pipeline.Processors[1]
	if !reflect.DeepEqual(e.StringMap("headers"), map[string]string{"X-A": "1", "X-B": "two"}) || e.Float("ratio") != 2 {
		t.Errorf("enrich = %v", e.Values())
	}
	rules := e.ObjectList("rules")
	if len(rules) != 2 {
		t.Fatalf("rules = %v", e.List("rules"))
	}
	if rules[0].String("name") != "first" || rules[0].Float("weight") != 1 || rules[0].Duration("timeout") != 250*time.Millisecond {
		t.Errorf("rules[0] = %v", rules[0].Values())
	}
	if rules[1].String("name") != "second" || rules[1].Float("weight") != 0.25 || rules[1].Duration("timeout") != 1500*time.Millisecond {
		t.Errorf("rules[1] = %v", rules[1].Values())
	}
	if rules[1].Path != "streams[0].pipeline.processors[1].rules[1]" || rules[1].FieldLine("weight") != 41 {
		t.Errorf("rules[1] at %s line %d", rules[1].Path, rules[1].FieldLine("weight"))
	}
	retry := e.Object("retry")
	if retry == nil || retry.Int("max_attempts") != 5 || retry.Duration("backoff") != 100*time.Millisecond {
		t.Errorf("retry = %+v", retry)
	}
	wantExtra := map[string]any{"a": []any{int64(1), 2.5, true, nil, "x"}}
	if !reflect.DeepEqual(e.Value("extra"), wantExtra) {
		t.Errorf("extra = %#v", e.Value("extra"))
	}
	if s.Buffer == nil || s.Buffer.Type != "tumbling_window" || s.Buffer.Duration("size") != 10*time.Second {
		t.Errorf("buffer = %+v", s.Buffer)
	}
	if s.ErrorOutput == nil || s.ErrorOutput.Type != "file" || !s.ErrorOutput.Bool("exactly_once") {
		t.Errorf("error_output = %+v", s.ErrorOutput)
	}
	if len(root.Streams) != 2 {
		t.Fatalf("%d streams", len(root.Streams))
	}
	in2 := root.Streams[1].Input
	if root.Streams[1].Name != "stream-1" || in2.Type != "kafka" || in2.String("client_id") != "second" ||
		!reflect.DeepEqual(in2.StringList("topics"), []string{"x"}) || !reflect.DeepEqual(in2.StringList("brokers"), []string{"a:9092", "b:9092"}) {
		t.Errorf("merged input = %v", in2.Values())
	}
	wantWarnings := []string{`pipeline.yaml:49: streams[0].output: state.exactly_once is true but output "stdout" is at-least-once`}
	if !reflect.DeepEqual(root.Warnings, wantWarnings) {
		t.Errorf("warnings:\n%q\nwant\n%q", root.Warnings, wantWarnings)
	}
}

func TestParseDurationForms(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"250ms": 250 * time.Millisecond, "1m30s": 90 * time.Second, "1500": 1500 * time.Millisecond,
		`"2000"`: 2 * time.Second, "0": 0, "1h": time.Hour,
	} {
		root, err := config.Parse("p.yaml", []byte("shutdown_timeout: "+in+minimal), env(nil))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if root.ShutdownTimeout != want {
			t.Errorf("%s: got %v, want %v", in, root.ShutdownTimeout, want)
		}
	}
	for _, in := range []string{"-1s", "-5", "1d", "true", "[1s]", "1.5"} {
		if _, err := config.Parse("p.yaml", []byte("shutdown_timeout: "+in+minimal), env(nil)); err == nil {
			t.Errorf("%s: accepted", in)
		}
	}
}

func TestWarnings(t *testing.T) {
	const text = `state:
  exactly_once: true
  backend_type: Memory
  s3_config: {bucket: b}
streams:
  - input: {type: file, path: in.txt}
    output: {type: kafka, brokers: [a], topic: t}
    error_output: {type: http, url: "http://x"}
  - input: {type: file, path: in.txt}
    output:
      type: kafka
      brokers: [a]
      topic: t
      exactly_once: true
    error_output: {type: drop}
`
	root, err := config.Parse("p.yaml", []byte(text), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`p.yaml:2: state.exactly_once: true but state.enabled is false: no checkpoints are taken, so delivery is at-least-once`,
		`p.yaml:4: state.s3_config: set but backend_type Memory does not use S3`,
		`p.yaml:7: streams[0].output.exactly_once: false while state.exactly_once is true: output "kafka" writes at-least-once`,
		`p.yaml:8: streams[0].error_output: state.exactly_once is true but output "http" is at-least-once`,
		`p.yaml:14: streams[1].output.exactly_once: true but state.enabled is false: no checkpoints are taken for output "kafka" to commit at`,
	}
	if !reflect.DeepEqual(root.Warnings, want) {
		t.Errorf("warnings:\n%s\nwant\n%s", strings.Join(root.Warnings, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "my pipeline.yml")
	if err := os.WriteFile(path, []byte("shutdown_timeout: ${WEIR_TEST_TIMEOUT:5s}\n"+minimal), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WEIR_TEST_TIMEOUT", "7s")
	root, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if root.ShutdownTimeout != 7*time.Second || root.State.PipelineID != "my-pipeline" || root.File != path {
		t.Errorf("root = %+v", root)
	}
	if _, err := config.Load(filepath.Join(dir, "missing.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v", err)
	}
}

func TestClosest(t *testing.T) {
	names := []string{"drop", "file", "http", "kafka", "stdout"}
	for in, want := range map[string]string{
		"kafak": "kafka", "KAFKA": "kafka", "fil": "file", "stdot": "stdout", "mqtt": "", "x": "", "files": "file",
	} {
		if got := config.Closest(in, names); got != want {
			t.Errorf("Closest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRootFieldsAreValid(t *testing.T) {
	for _, err := range config.CheckFields("root", config.RootFields()) {
		t.Error(err)
	}
	for _, err := range config.CheckSpecs() {
		t.Error(err)
	}
}

func TestCheckSpecFindsMistakes(t *testing.T) {
	spec := component.Spec{Kind: component.KindOutput, Name: "bad", Fields: []component.Field{
		{Name: "type", Type: component.TypeString, Description: "x"},
		{Name: "n", Type: component.TypeInt, Default: "many", Description: "x"},
		{Name: "n", Type: "integer"},
		{Name: "f", Type: component.TypeString, Default: "c", Options: []string{"a", "b"}, Description: "x"},
	}}
	var got []string
	for _, err := range config.CheckSpec(spec) {
		got = append(got, err.Error())
	}
	want := []string{
		`output "bad": empty Summary`,
		`output "bad": outputs must state their Delivery`,
		`output "bad": field name "type" is reserved for the component type`,
		`output "bad": field "n": invalid default many in the spec (a bug in weir): expected an integer, got "many"`,
		`output "bad": field "n": declared twice`,
		`output "bad": field "n": empty Description`,
		`output "bad": field "n": unknown type "integer"`,
		`output "bad": field "f": default "c" is not one of its Options`,
		`output "bad": field "f": invalid default c in the spec (a bug in weir): expected one of: a, b, got "c"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseComponent(t *testing.T) {
	c, err := config.ParseComponent(component.KindInput, "type: file\npath: in.csv\nformat: csv\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != "file" || c.Path != "input" || c.String("path") != "in.csv" || c.String("format") != "csv" || c.Duration("poll_interval") != time.Second {
		t.Errorf("config = %+v %v", c, c.Values())
	}
	_, err = config.ParseComponent(component.KindOutput, "type: http\nurl: [x]\n")
	if want := `component.yaml:2: output.url: expected a string, got a list`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}
