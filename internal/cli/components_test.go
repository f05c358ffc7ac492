package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/internal/docgen"
)

// Fake components for the CLI tests (the registry is global to the test
// binary; real components are not imported by package cli).
func init() {
	component.RegisterInput(component.Spec{
		Name: "test_in", Summary: "Reads test records.", Bounded: true,
		Fields: []component.Field{
			{Name: "path", Type: component.TypeString, Required: true, Description: "File to read."},
			{Name: "format", Type: component.TypeString, Default: "lines", Options: []string{"lines", "csv"}, Description: "Record format."},
			{Name: "tls", Type: component.TypeObject, Description: "TLS settings.", Fields: []component.Field{
				{Name: "enabled", Type: component.TypeBool, Default: false, Description: "Use TLS."},
			}},
		},
		Example: "input:\n  type: test_in\n  path: ./in.txt\n",
	}, func(*component.Config, component.Resources) (component.Input, error) { return nil, nil })
	component.RegisterProcessor(component.Spec{
		Name: "test_proc", Summary: "Counts things.", Stateful: true,
	}, func(*component.Config, component.Resources) (component.Processor, error) { return nil, nil })
	component.RegisterOutput(component.Spec{
		Name: "test_out", Summary: "Writes test records.", Delivery: component.DeliveryAtLeastOnce,
		Fields: []component.Field{
			{Name: "target", Type: component.TypeString, Default: "stdout", Description: "Where to write."},
		},
	}, func(*component.Config, component.Resources) (component.Output, error) { return nil, nil })
	component.RegisterOutput(component.Spec{
		Name: "test_txn", Summary: "Writes transactionally, e.g. to Kafka. More.", Delivery: component.DeliveryExactlyOnce,
	}, func(*component.Config, component.Resources) (component.Output, error) { return nil, nil })
}

// run runs the CLI and returns its exit code, stdout and stderr.
func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestComponentsList(t *testing.T) {
	code, out, stderr := run("components")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := `INPUTS
  test_in    Reads test records.

PROCESSORS
  test_proc  Counts things.

OUTPUTS
  test_out   at-least-once  Writes test records.
  test_txn   exactly-once   Writes transactionally, e.g. to Kafka.
`
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}

	code, out, _ = run("components", "outputs")
	if code != ExitOK || strings.Contains(out, "INPUTS") || !strings.Contains(out, "test_txn") {
		t.Errorf("components outputs: exit %d:\n%s", code, out)
	}
}

func TestComponentsSpec(t *testing.T) {
	code, out, stderr := run("components", "input", "test_in")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := `test_in (input)
  Reads test records.
  Bounded: the stream ends when the input is exhausted.

FIELDS
  type (string, required)
      "test_in" for this input.
  path (string, required)
      File to read.
  format (string, default: lines, one of: lines, csv)
      Record format.
  tls (object)
      TLS settings.
  tls.enabled (bool, default: false)
      Use TLS.

EXAMPLE
  input:
    type: test_in
    path: ./in.txt
`
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestComponentsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"components", "inptu"}, `weir: components: unknown kind "inptu"; expected one of: input, processor, output; did you mean "input"?` + "\n"},
		{[]string{"components", "output", "test_ot"}, `weir: components: unknown output "test_ot"; did you mean "test_out"?` + "\n"},
		{[]string{"components", "--format", "yaml"}, `weir: components: --format: expected text or json, got "yaml"` + "\n"},
		{[]string{"components", "--markdown", "input"}, "weir: components: --markdown documents every component; it takes no arguments\n"},
	} {
		code, _, stderr := run(tc.args...)
		if code != ExitFailure || stderr != tc.want {
			t.Errorf("%v: exit %d, stderr %q; want %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestComponentsJSON(t *testing.T) {
	code, out, stderr := run("components", "--format", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var docs []docgen.SpecDoc
	if err := json.Unmarshal([]byte(out), &docs); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range docs {
		names = append(names, string(d.Kind)+"/"+d.Name)
	}
	if got := strings.Join(names, " "); got != "input/test_in processor/test_proc output/test_out output/test_txn" {
		t.Errorf("specs: %s", got)
	}

	code, out, _ = run("components", "output", "test_out", "--format", "json")
	var d docgen.SpecDoc
	if err := json.Unmarshal([]byte(out), &d); code != ExitOK || err != nil {
		t.Fatalf("exit %d, %v: %s", code, err, out)
	}
	if d.Delivery != "at-least-once" || len(d.Fields) != 1 || d.Fields[0].Default != "stdout" {
		t.Errorf("doc = %+v", d)
	}
}

func TestComponentsMarkdown(t *testing.T) {
	code, out, _ := run("components", "--markdown")
	var want bytes.Buffer
	if err := docgen.Markdown(&want); err != nil {
		t.Fatal(err)
	}
	if code != ExitOK || out != want.String() {
		t.Errorf("exit %d; output differs from docgen.Markdown", code)
	}
}
