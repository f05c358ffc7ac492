package cli

import (
	"encoding/json"
	"testing"
)

func TestSchemaCmd(t *testing.T) {
	code, out, stderr := run("schema")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var s struct {
		Schema string                     `json:"$schema"`
		Defs   map[string]json.RawMessage `json:"$defs"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.Schema != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %q", s.Schema)
	}
	for _, id := range []string{"input", "processor", "output", "input.test_in", "output.test_txn"} {
		if _, ok := s.Defs[id]; !ok {
			t.Errorf("no $defs/%s", id)
		}
	}
}
