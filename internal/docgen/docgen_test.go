package docgen_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/internal/docgen"
)

var update = flag.Bool("update", false, "rewrite testdata/components.golden.md")

// Fake components; the registry is global to this test binary.
func init() {
	component.RegisterInput(component.Spec{
		Name: "test_in", Summary: "Reads test records.", Bounded: true,
		Fields: []component.Field{
			{Name: "path", Type: component.TypeString, Required: true, Description: "File to read."},
			{Name: "format", Type: component.TypeString, Default: "lines", Options: []string{"lines", "csv"}, Description: "Record format."},
			{Name: "poll", Type: component.TypeDuration, Default: 90 * time.Second, Description: "Poll | interval."},
			{Name: "tls", Type: component.TypeObject, Description: "TLS settings.", Fields: []component.Field{
				{Name: "enabled", Type: component.TypeBool, Default: false, Description: "Use TLS."},
			}},
		},
		Example: `
	input:
	  type: test_in
	  path: ./in.txt
`,
	}, func(*component.Config, component.Resources) (component.Input, error) { return nil, nil })
	component.RegisterProcessor(component.Spec{
		Name: "test_proc", Summary: "Counts things.", Stateful: true,
		Fields: []component.Field{
			{Name: "rules", Type: component.TypeList, Description: "Rules.", Fields: []component.Field{
				{Name: "name", Type: component.TypeString, Required: true, Description: "Rule name."},
			}},
			{Name: "tags", Type: component.TypeMap, Elem: component.TypeString, Description: "Tags.", Advanced: true},
			{Name: "keys", Type: component.TypeList, Elem: component.TypeExpr, Default: []string{"a"}, Description: "Keys."},
		},
	}, func(*component.Config, component.Resources) (component.Processor, error) { return nil, nil })
	component.RegisterOutput(component.Spec{
		Name: "test_out", Summary: "Writes test records.", Delivery: component.DeliveryAtLeastOnce,
	}, func(*component.Config, component.Resources) (component.Output, error) { return nil, nil })
}

func TestMarkdownGolden(t *testing.T) {
	var a, b bytes.Buffer
	if err := docgen.Markdown(&a); err != nil {
		t.Fatal(err)
	}
	if err := docgen.Markdown(&b); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Fatal("Markdown is not deterministic")
	}
	golden := filepath.Join("testdata", "components.golden.md")
	if *update {
		if err := os.WriteFile(golden, a.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if a.String() != string(want) {
		t.Errorf("Markdown differs from %s (go test -update to rewrite):\n%s", golden, a.String())
	}
}

func TestSchema(t *testing.T) {
	var buf bytes.Buffer
	if err := docgen.WriteSchema(&buf); err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(buf.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	get := func(v any, path ...string) any {
		t.Helper()
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not an object at %q", path, p)
			}
			v = m[p]
		}
		return v
	}
	if get(s, "$schema") != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", get(s, "$schema"))
	}
	if !reflect.DeepEqual(get(s, "required"), []any{"streams"}) || get(s, "additionalProperties") != false {
		t.Errorf("root required %v, additionalProperties %v", get(s, "required"), get(s, "additionalProperties"))
	}
	if got := get(s, "properties", "shutdown_timeout", "default"); got != "30s" {
		t.Errorf("shutdown_timeout default = %v", got)
	}
	if got := get(s, "properties", "state", "properties", "backend_type", "enum"); !reflect.DeepEqual(got, []any{"Memory", "Hybrid", "S3", "Pebble"}) {
		t.Errorf("backend_type enum = %v", got)
	}
	stream := get(s, "properties", "streams", "items")
	if got := get(stream, "properties", "input", "$ref"); got != "#/$defs/input" {
		t.Errorf("input slot = %v", got)
	}
	if got := get(stream, "properties", "pipeline", "properties", "processors", "items", "$ref"); got != "#/$defs/processor" {
		t.Errorf("processors items = %v", got)
	}
	if got := get(s, "$defs", "input", "oneOf"); !reflect.DeepEqual(got, []any{map[string]any{"$ref": "#/$defs/input.test_in"}}) {
		t.Errorf("input oneOf = %v", got)
	}
	in := get(s, "$defs", "input.test_in")
	if get(in, "properties", "type", "const") != "test_in" || get(in, "additionalProperties") != false ||
		!reflect.DeepEqual(get(in, "required"), []any{"type", "path"}) {
		t.Errorf("input.test_in = %v", in)
	}
	if got := get(in, "properties", "poll", "default"); got != "1m30s" {
		t.Errorf("poll default = %v", got)
	}
	if got := get(in, "properties", "tls", "properties", "enabled", "type"); got != "boolean" {
		t.Errorf("tls.enabled type = %v", got)
	}
	proc := get(s, "$defs", "processor.test_proc")
	if got := get(proc, "properties", "rules", "items", "required"); !reflect.DeepEqual(got, []any{"name"}) {
		t.Errorf("rules items required = %v", got)
	}
	if got := get(proc, "properties", "tags", "additionalProperties", "type"); got != "string" {
		t.Errorf("tags values = %v", got)
	}
	out := get(s, "$defs", "output.test_out")
	if !reflect.DeepEqual(get(out, "required"), []any{"type"}) {
		t.Errorf("output.test_out = %v", out)
	}
}

func TestDocJSON(t *testing.T) {
	d := docgen.Doc(component.Lookup(component.KindInput, "test_in").Spec)
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"input","name":"test_in","summary":"Reads test records.","bounded":true,"fields":[` +
		`{"name":"path","type":"string","description":"File to read.","required":true},` +
		`{"name":"format","type":"string","description":"Record format.","default":"lines","options":["lines","csv"]},` +
		`{"name":"poll","type":"duration","description":"Poll | interval.","default":"1m30s"},` +
		`{"name":"tls","type":"object","description":"TLS settings.","fields":[{"name":"enabled","type":"bool","description":"Use TLS.","default":false}]}],` +
		`"example":"input:\n  type: test_in\n  path: ./in.txt"}`
	if string(b) != want {
		t.Errorf("got:\n%s\nwant:\n%s", b, want)
	}
}

func TestFormatDefault(t *testing.T) {
	for _, tc := range []struct {
		f    component.Field
		want string
	}{
		{component.Field{Type: component.TypeString}, ""},
		{component.Field{Type: component.TypeString, Default: ""}, `""`},
		{component.Field{Type: component.TypeDuration, Default: time.Hour}, "1h"},
		{component.Field{Type: component.TypeDuration, Default: "250ms"}, "250ms"},
		{component.Field{Type: component.TypeInt, Default: 128}, "128"},
		{component.Field{Type: component.TypeBool, Default: false}, "false"},
		{component.Field{Type: component.TypeList, Default: []any{}}, "[]"},
		{component.Field{Type: component.TypeList, Default: []string{"a", "b"}}, `["a","b"]`},
		{component.Field{Type: component.TypeObject, Default: map[string]any{}}, ""},
	} {
		if got := docgen.FormatDefault(tc.f); got != tc.want {
			t.Errorf("FormatDefault(%v) = %q, want %q", tc.f.Default, got, tc.want)
		}
	}
	if got := strings.Join([]string{docgen.FormatDuration(90 * time.Minute), docgen.FormatDuration(time.Minute), docgen.FormatDuration(1500 * time.Millisecond)}, " "); got != "1h30m 1m 1.5s" {
		t.Errorf("FormatDuration: %s", got)
	}
}
