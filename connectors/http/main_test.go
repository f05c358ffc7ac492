package httpconn

import (
	"maps"
	"net/http"
	"testing"

	"go.uber.org/goleak"

	"github.com/weir-stream/weir/component"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testConfig builds a component config from the spec's defaults and vals.
func testConfig(spec component.Spec, path string, vals map[string]any) *component.Config {
	all := map[string]any{}
	for _, f := range spec.Fields {
		if f.Default != nil {
			all[f.Name] = f.Default
		}
	}
	maps.Copy(all, vals)
	return component.NewConfig("test.yaml", path, 1, spec.Name, all, nil)
}

// newTestClient returns a client with its own transport, whose idle
// connections are closed when the test ends (goleak).
func newTestClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestRegistered(t *testing.T) {
	if component.Lookup(component.KindInput, "http") == nil {
		t.Error("http input not registered")
	}
	reg := component.Lookup(component.KindOutput, "http")
	if reg == nil {
		t.Fatal("http output not registered")
	}
	if reg.Spec.Delivery != component.DeliveryAtLeastOnce {
		t.Errorf("output delivery = %q, want at-least-once", reg.Spec.Delivery)
	}
	for _, spec := range []component.Spec{inputSpec(), outputSpec()} {
		for _, f := range spec.Fields {
			if f.Description == "" {
				t.Errorf("%s field %s has no description", spec.Name, f.Name)
			}
		}
	}
}
