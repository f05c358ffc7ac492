package processors

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/message"
)

func TestMapping(t *testing.T) {
	in := withMeta(record([]string{"price", "qty", "user"}, int64Col(10, 3), int64Col(2, 5), stringCol("Ann", "Bob")))
	tests := []struct {
		name   string
		cols   map[string]any
		drop   []any
		schema string
		rows   []string
	}{
		{
			name:   "add and replace",
			cols:   map[string]any{"total": "price * qty", "user": "lower(user)", "half": "price / 2", "big": "price > 5", "part": "meta.offset"},
			schema: "price:int64,qty:int64,user:utf8,__meta_offset:int64,__meta_key:utf8,big:bool,half:float64,part:int64,total:int64",
			rows: []string{
				`{"price":10,"qty":2,"user":"ann","__meta_offset":100,"__meta_key":"k0","big":true,"half":5,"part":100,"total":20}`,
				`{"price":3,"qty":5,"user":"bob","__meta_offset":101,"__meta_key":"k1","big":false,"half":1.5,"part":101,"total":15}`,
			},
		},
		{
			name:   "drop only",
			drop:   []any{"qty", "nope"},
			schema: "price:int64,user:utf8,__meta_offset:int64,__meta_key:utf8",
		},
		{
			name:   "mixed types and missing column",
			cols:   map[string]any{"m": "price > 5 ? price : 'cheap'", "x": "missing"},
			drop:   []any{"price", "qty", "user"},
			schema: "__meta_offset:int64,__meta_key:utf8,m:utf8,x:utf8",
			rows: []string{
				`{"__meta_offset":100,"__meta_key":"k0","m":"10","x":null}`,
				`{"__meta_offset":101,"__meta_key":"k1","m":"cheap","x":null}`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := map[string]any{}
			if tt.cols != nil {
				conf["columns"] = tt.cols
			}
			if tt.drop != nil {
				conf["drop"] = tt.drop
			}
			good, bad := splitResults(t, process(t, newProc(t, "mapping", conf), in))
			if bad != nil {
				t.Fatalf("errors: %q", jsonRows(bad))
			}
			if got := schemaString(good); got != tt.schema {
				t.Fatalf("schema\n got %s\nwant %s", got, tt.schema)
			}
			if tt.rows != nil && !slices.Equal(jsonRows(good), tt.rows) {
				t.Fatalf("rows\n got %q\nwant %q", jsonRows(good), tt.rows)
			}
		})
	}
}

func TestMappingContent(t *testing.T) {
	p := newProc(t, "mapping", map[string]any{"columns": map[string]any{"word": "upper(content)", "n": "len(content)"}})
	good, _ := splitResults(t, process(t, p, message.FromStrings("ab", "cde")))
	if got := jsonRows(good); !slices.Equal(got, []string{`{"__value__":"ab","n":2,"word":"AB"}`, `{"__value__":"cde","n":3,"word":"CDE"}`}) {
		t.Fatalf("rows %q", got)
	}
}

func TestMappingErrorRows(t *testing.T) {
	p := newProc(t, "mapping", map[string]any{"columns": map[string]any{"n": "int(s) * 2", "u": "upper(s)"}})
	in := withMeta(record([]string{"s"}, stringCol("1", "x", "3", "y")))
	good, bad := splitResults(t, process(t, p, in))
	if got := jsonRows(good); !slices.Equal(got, []string{
		`{"s":"1","__meta_offset":100,"__meta_key":"k0","n":2,"u":"1"}`,
		`{"s":"3","__meta_offset":102,"__meta_key":"k2","n":6,"u":"3"}`,
	}) {
		t.Fatalf("good %q", got)
	}
	if bad == nil {
		t.Fatal("no error batch")
	}
	// Failed rows keep their original columns only (no computed ones).
	if got := schemaString(bad); got != "s:utf8,__meta_offset:int64,__meta_key:utf8,__meta_error:utf8" {
		t.Fatalf("error schema %s", got)
	}
	if got := strs(t, bad, "s"); !slices.Equal(got, []string{"x", "y"}) {
		t.Fatalf("failed rows %q", got)
	}
	for _, msg := range strs(t, bad, message.MetaError) {
		if !strings.HasPrefix(msg, "mapping: column n: ") || !strings.Contains(msg, "invalid operation") {
			t.Fatalf("error text %q", msg)
		}
	}
}

func TestMappingConfigErrors(t *testing.T) {
	confErr(t, "mapping", nil)
	confErr(t, "mapping", map[string]any{"columns": map[string]any{"a": "1 +"}})
	confErr(t, "mapping", map[string]any{"columns": map[string]any{"a": "1"}, "drop": []any{"a"}})
}

func BenchmarkMapping(b *testing.B) {
	const rows = 8192
	price := array.NewInt64Builder(message.Alloc)
	user := array.NewStringBuilder(message.Alloc)
	for i := 0; i < rows; i++ {
		price.Append(int64(i))
		user.Append(fmt.Sprintf("User-%d", i%100))
	}
	in := record([]string{"price", "user"}, price.NewArray(), user.NewArray())
	for _, cols := range []map[string]any{
		{"total": "price * 2"},
		{"total": "price * 2", "u": "lower(user)", "big": "price > 100"},
	} {
		b.Run(fmt.Sprintf("%d-columns", len(cols)), func(b *testing.B) {
			p := newProc(b, "mapping", map[string]any{"columns": cols})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Process(b.Context(), in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}
}
