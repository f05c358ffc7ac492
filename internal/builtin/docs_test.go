package builtin_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/config"
	_ "github.com/weir-stream/weir/internal/builtin"
	"github.com/weir-stream/weir/internal/docgen"
)

// TestDocsUpToDate keeps docs/components.md in step with the registered
// components. UPDATE_DOCS=1 rewrites it.
func TestDocsUpToDate(t *testing.T) {
	var buf bytes.Buffer
	if err := docgen.Markdown(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "components.md")
	if os.Getenv("UPDATE_DOCS") == "1" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(have, buf.Bytes()) {
		t.Fatalf("docs/components.md is stale: run make docs (or UPDATE_DOCS=1 go test -count=1 -run TestDocsUpToDate ./internal/builtin/)")
	}
}

// TestSpecsValid checks every shipped spec: field types, defaults that
// validate, options, descriptions.
func TestSpecsValid(t *testing.T) {
	for _, err := range config.CheckSpecs() {
		t.Error(err)
	}
}

// TestExamplesValid runs every spec's example through the config loader,
// inside a stream completed with other components where needed.
func TestExamplesValid(t *testing.T) {
	filler := map[component.Kind]map[string]any{}
	for _, kind := range []component.Kind{component.KindInput, component.KindOutput} {
		for _, s := range docgen.Specs(kind) {
			if !hasRequired(s.Fields) {
				filler[kind] = map[string]any{"type": s.Name}
				break
			}
		}
	}
	anyEnv := func(string) (string, bool) { return "x", true }
	for _, kind := range component.Kinds {
		for _, s := range docgen.Specs(kind) {
			if s.Example == "" {
				t.Errorf("%s %s: no Example", kind, s.Name)
				continue
			}
			var stream map[string]any
			if err := yaml.Unmarshal([]byte(s.Example), &stream); err != nil {
				t.Errorf("%s %s: example is not YAML: %v", kind, s.Name, err)
				continue
			}
			if procs, ok := stream["processors"]; ok {
				delete(stream, "processors")
				stream["pipeline"] = map[string]any{"processors": procs}
			}
			key := string(kind)
			if kind == component.KindProcessor {
				key = "pipeline"
				if _, ok := stream["buffer"]; ok {
					key = "buffer"
				}
			}
			if _, ok := stream[key]; !ok {
				t.Errorf("%s %s: example should be a stream fragment (input:, output:, processors:, pipeline: or buffer:), got:\n%s", kind, s.Name, s.Example)
				continue
			}
			for _, k := range []component.Kind{component.KindInput, component.KindOutput} {
				if _, ok := stream[string(k)]; !ok {
					if filler[k] == nil {
						t.Skipf("no %s without required fields to complete examples with", k)
					}
					stream[string(k)] = filler[k]
				}
			}
			text, err := yaml.Marshal(map[string]any{"streams": []any{stream}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := config.Parse("example.yaml", text, anyEnv); err != nil {
				t.Errorf("%s %s: example does not validate:\n%v\nin:\n%s", kind, s.Name, err, text)
			}
		}
	}
}

func hasRequired(fields []component.Field) bool {
	for _, f := range fields {
		if f.Required {
			return true
		}
	}
	return false
}
