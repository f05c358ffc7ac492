package processors

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/message"
)

func TestArrowToJSON(t *testing.T) {
	bld := array.NewFloat64Builder(message.Alloc)
	bld.AppendValues([]float64{1.5, 0}, []bool{true, false})
	in := withMeta(record([]string{"a", "b", "c"}, int64Col(1, 2), stringCol(`x"y`, "z"), bld.NewArray()))
	tests := []struct {
		name   string
		conf   map[string]any
		schema string
		values []string
	}{
		{"all", nil, "__value__:binary,__meta_offset:int64,__meta_key:utf8",
			[]string{`{"a":1,"b":"x\"y","c":1.5}`, `{"a":2,"b":"z","c":null}`}},
		{"fields", map[string]any{"fields": []any{"c", "nope", "a"}}, "__value__:binary,__meta_offset:int64,__meta_key:utf8",
			[]string{`{"c":1.5,"a":1}`, `{"c":null,"a":2}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProc(t, "arrow_to_json", tt.conf)
			out := process(t, p, in)
			if len(out) != 1 {
				t.Fatalf("%d batches", len(out))
			}
			if got := schemaString(out[0]); got != tt.schema {
				t.Fatalf("schema %s", got)
			}
			if got := strs(t, out[0], message.ValueColumn); !slices.Equal(got, tt.values) {
				t.Fatalf("values %q", got)
			}
			if got := strs(t, out[0], message.MetaKey); !slices.Equal(got, []string{"k0", "k1"}) {
				t.Fatalf("meta kept wrong: %q", got)
			}
		})
	}
	confErr(t, "arrow_to_json", map[string]any{"fields": []any{}})
}

func TestJSONRoundTrip(t *testing.T) {
	rows := []string{
		`{"id":1,"name":"a\"b\\c","score":1.25,"ok":true,"tags":["x","y"],"obj":{"k":null},"note":"é\n"}`,
		`{"id":-2,"name":"","score":3,"ok":false,"tags":[],"obj":{},"note":"\u0001"}`,
	}
	in := withMeta(message.FromStrings(rows...))
	parsed := process(t, newProc(t, "json_to_arrow", nil), in)
	out := process(t, newProc(t, "arrow_to_json", nil), parsed[0])
	got := strs(t, out[0], message.ValueColumn)
	for i, row := range rows {
		var want, have map[string]any
		if err := json.Unmarshal([]byte(row), &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(got[i]), &have); err != nil {
			t.Fatalf("row %d: %v: %s", i, err, got[i])
		}
		// Nested values come back as their JSON text.
		for _, k := range []string{"tags", "obj"} {
			var v any
			if err := json.Unmarshal([]byte(have[k].(string)), &v); err != nil {
				t.Fatal(err)
			}
			have[k] = v
		}
		if !reflect.DeepEqual(want, have) {
			t.Fatalf("row %d:\n got %v\nwant %v", i, have, want)
		}
	}
	if got := strs(t, out[0], message.MetaKey); !slices.Equal(got, []string{"k0", "k1"}) {
		t.Fatalf("metadata lost: %q", got)
	}
}
