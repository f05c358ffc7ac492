package processors

import (
	"slices"
	"strings"
	"testing"

	"github.com/weir-stream/weir/message"
)

func TestFilter(t *testing.T) {
	in := withMeta(record([]string{"n", "s"}, int64Col(1, 5, 7, 2), stringCol("a", "b", "c", "d")))
	tests := []struct {
		cond string
		want []string // values of s kept
		same bool     // the input batch itself comes back
	}{
		{"n > 4", []string{"b", "c"}, false},
		{"n > 0", []string{"a", "b", "c", "d"}, true},
		{"n > 100", nil, false},
		{`s in ["a", "d"] && meta.offset >= 100`, []string{"a", "d"}, false},
		{"missing == nil", []string{"a", "b", "c", "d"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.cond, func(t *testing.T) {
			out := process(t, newProc(t, "filter", map[string]any{"condition": tt.cond}), in)
			good, bad := splitResults(t, out)
			if bad != nil {
				t.Fatalf("errors %q", jsonRows(bad))
			}
			if tt.want == nil {
				if len(out) != 0 {
					t.Fatalf("want no batch, got %d", len(out))
				}
				return
			}
			if got := strs(t, good, "s"); !slices.Equal(got, tt.want) {
				t.Fatalf("kept %q", got)
			}
			if tt.same != (good == in) {
				t.Fatalf("same batch = %v", good == in)
			}
			if good.Column(message.MetaKey) == nil {
				t.Fatal("metadata dropped")
			}
		})
	}
}

func TestFilterErrorRows(t *testing.T) {
	in := record([]string{"v"}, stringCol("1", "x", "yes", "3"))
	// "x" is not a number (error); "yes" is not a bool result (error).
	p := newProc(t, "filter", map[string]any{"condition": `v == "yes" ? "not a bool" : int(v) > 1`})
	good, bad := splitResults(t, process(t, p, in))
	if got := strs(t, good, "v"); !slices.Equal(got, []string{"3"}) {
		t.Fatalf("kept %q", got)
	}
	if got := strs(t, bad, "v"); !slices.Equal(got, []string{"x", "yes"}) {
		t.Fatalf("failed %q", got)
	}
	errs := strs(t, bad, message.MetaError)
	if !strings.HasPrefix(errs[0], "filter: ") || !strings.Contains(errs[1], "not a bool") {
		t.Fatalf("errors %q", errs)
	}
}

func TestFilterConfigErrors(t *testing.T) {
	confErr(t, "filter", map[string]any{"condition": ""})
	confErr(t, "filter", map[string]any{"condition": "1 + 2"})
	confErr(t, "filter", map[string]any{"condition": "a >"})
}

func BenchmarkFilter(b *testing.B) {
	const rows = 8192
	vals := make([]int64, rows)
	for i := range vals {
		vals[i] = int64(i)
	}
	in := record([]string{"n"}, int64Col(vals...))
	p := newProc(b, "filter", map[string]any{"condition": "n % 2 == 0"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Process(b.Context(), in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}
