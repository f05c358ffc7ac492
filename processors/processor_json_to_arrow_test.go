package processors

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/message"
)

func TestJSONToArrowTypes(t *testing.T) {
	p := newProc(t, "json_to_arrow", nil)
	in := withMeta(message.FromStrings(
		`{"a":1,"b":1.5,"c":true,"d":"x","e":{"k":[1, 2]},"f":null}`,
		` {"a":2,"b":2,"g":"only here","big":9223372036854775807} `,
		`{"a":-3,"d":"y\u00e9\n\"q\" \ud83d\ude00","h":1,"c":false,"e":[],"big":-9223372036854775808}`,
	))
	good, bad := splitResults(t, process(t, p, in))
	if bad != nil {
		t.Fatalf("unexpected errors: %v", jsonRows(bad))
	}
	wantSchema := "__meta_offset:int64,__meta_key:utf8,a:int64,b:float64,c:bool,d:utf8,e:utf8,f:utf8,g:utf8,big:int64,h:int64"
	if got := schemaString(good); got != wantSchema {
		t.Fatalf("schema\n got %s\nwant %s", got, wantSchema)
	}
	want := []string{
		`{"__meta_offset":100,"__meta_key":"k0","a":1,"b":1.5,"c":true,"d":"x","e":"{\"k\":[1, 2]}","f":null,"g":null,"big":null,"h":null}`,
		`{"__meta_offset":101,"__meta_key":"k1","a":2,"b":2,"c":null,"d":null,"e":null,"f":null,"g":"only here","big":9223372036854775807,"h":null}`,
		`{"__meta_offset":102,"__meta_key":"k2","a":-3,"b":null,"c":false,"d":"yé\n\"q\" 😀","e":"[]","f":null,"g":null,"big":-9223372036854775808,"h":1}`,
	}
	if got := jsonRows(good); !slices.Equal(got, want) {
		t.Fatalf("rows\n got %q\nwant %q", got, want)
	}
}

func TestJSONToArrowMixedTypesBecomeText(t *testing.T) {
	p := newProc(t, "json_to_arrow", nil)
	good, _ := splitResults(t, process(t, p, message.FromStrings(
		`{"m":1,"n":1}`, `{"m":"s","n":2.5}`, `{"m":true,"n":null}`, `{"m":{"x":"y"}}`, `{"m":-1.5e2}`, `{"m":null}`)))
	if got := strs(t, good, "m"); !slices.Equal(got, []string{"1", "s", "true", `{"x":"y"}`, "-1.5e2", "<null>"}) {
		t.Fatalf("m = %q", got)
	}
	if n := good.Column("n"); n.DataType().ID() != arrow.FLOAT64 || n.ValueStr(0) != "1" || n.ValueStr(1) != "2.5" || !n.IsNull(2) {
		t.Fatalf("n = %v", n)
	}
	// A key null everywhere has the null type; one holding only integers
	// that overflow int64 is float64.
	good, _ = splitResults(t, process(t, p, message.FromStrings(`{"z":null,"u":18446744073709551615}`)))
	if got := schemaString(good); got != "z:utf8,u:float64" {
		t.Fatalf("schema %s", got)
	}
}

func TestJSONToArrowErrorRows(t *testing.T) {
	p := newProc(t, "json_to_arrow", nil)
	inputs := []string{
		`{"a":1}`,
		`not json`,
		`[1,2]`,
		`{"a":2,}`,
		`{"a":3} x`,
		`{"a":"unterminated`,
		`{"a":4,"only_in_good":true}`,
		`{"b":"\x"}`,
		`{"a":01}`,
		`{"failed_only":1, oops}`,
		``,
	}
	in := withMeta(message.FromStrings(inputs...))
	good, bad := splitResults(t, process(t, p, in))
	if got := jsonRows(good); !slices.Equal(got, []string{
		`{"__meta_offset":100,"__meta_key":"k0","a":1,"only_in_good":null}`,
		`{"__meta_offset":106,"__meta_key":"k6","a":4,"only_in_good":true}`,
	}) {
		t.Fatalf("good rows %q", got)
	}
	if bad == nil {
		t.Fatal("no error batch")
	}
	// The error batch has the failed rows' original columns plus the error.
	if got := schemaString(bad); got != "__value__:binary,__meta_offset:int64,__meta_key:utf8,__meta_error:utf8" {
		t.Fatalf("error schema %s", got)
	}
	wantRows := []string{inputs[1], inputs[2], inputs[3], inputs[4], inputs[5], inputs[7], inputs[8], inputs[9], inputs[10]}
	if got := strs(t, bad, message.ValueColumn); !slices.Equal(got, wantRows) {
		t.Fatalf("failed rows %q", got)
	}
	offsets := bad.Column(message.MetaOffset).(*array.Int64).Int64Values()
	if !slices.Equal(offsets, []int64{101, 102, 103, 104, 105, 107, 108, 109, 110}) {
		t.Fatalf("failed offsets %v", offsets)
	}
	errs := strs(t, bad, message.MetaError)
	for i, want := range []string{
		"invalid character 'o' in literal null",
		"value is not a JSON object",
		`invalid character '}' looking for beginning of object key string`,
		"invalid character 'x' after top-level value",
		"unexpected end of input",
		`invalid character 'x' in string escape code`,
		"invalid character '1' after object key:value pair",
		"invalid character 'o' looking for beginning of object key string",
		"unexpected end of input",
	} {
		if !strings.HasPrefix(errs[i], "json_to_arrow: ") || !strings.Contains(errs[i], want) {
			t.Errorf("row %d: error %q, want it to contain %q", i, errs[i], want)
		}
	}
}

func TestJSONToArrowFieldsAndKeepValue(t *testing.T) {
	p := newProc(t, "json_to_arrow", map[string]any{
		"fields":     []any{"b", "missing", "a"},
		"keep_value": true,
	})
	in := message.FromStrings(`{"a":1,"b":"x","c":{"deep":[1,{"z":null}]}}`, `{"a":2,"c":[1,}`)
	good, bad := splitResults(t, process(t, p, in))
	if got := schemaString(good); got != "__value__:binary,b:utf8,missing:utf8,a:int64" {
		t.Fatalf("schema %s", got)
	}
	if got := jsonRows(good); !slices.Equal(got, []string{`{"__value__":"{\"a\":1,\"b\":\"x\",\"c\":{\"deep\":[1,{\"z\":null}]}}","b":"x","missing":null,"a":1}`}) {
		t.Fatalf("rows %q", got)
	}
	// Keys not listed are still validated.
	if bad == nil || bad.NumRows() != 1 {
		t.Fatalf("want the row with invalid JSON under an unlisted key to fail, got %v", jsonRows(bad))
	}
	confErr(t, "json_to_arrow", map[string]any{"fields": []any{"a", "a"}})
	confErr(t, "json_to_arrow", map[string]any{"value_field": ""})
}

func TestJSONToArrowKeysAndDuplicates(t *testing.T) {
	p := newProc(t, "json_to_arrow", nil)
	in := message.FromStrings(`{"a\u0062":1,"x":1,"x":"last"}`, `{"ab":2}`, `{}`)
	good, _ := splitResults(t, process(t, p, in))
	if got := jsonRows(good); !slices.Equal(got, []string{`{"ab":1,"x":"last"}`, `{"ab":2,"x":null}`, `{"ab":null,"x":null}`}) {
		t.Fatalf("rows %q", got)
	}
}

func TestJSONToArrowValueColumn(t *testing.T) {
	p := newProc(t, "json_to_arrow", map[string]any{"value_field": "payload"})
	in := record([]string{"payload", "a"}, stringCol(`{"a":"from json","b":1}`), int64Col(7))
	good, _ := splitResults(t, process(t, p, in))
	// A parsed key replaces a column of the same name.
	if got := jsonRows(good); !slices.Equal(got, []string{`{"a":"from json","b":1}`}) {
		t.Fatalf("rows %q", got)
	}
	if _, err := p.Process(t.Context(), message.FromStrings("{}")); err == nil {
		t.Fatal("want an error for a batch without the value field")
	}
	if _, err := p.Process(t.Context(), record([]string{"payload"}, int64Col(1))); err == nil {
		t.Fatal("want an error for a non-binary value field")
	}
}

// TestJSONScannerAgreesWithEncodingJSON checks that the scanner accepts and
// rejects exactly what encoding/json does, and decodes the same values.
func TestJSONScannerAgreesWithEncodingJSON(t *testing.T) {
	inputs := []string{
		`{}`, ` { } `, `{"a":1}`, `{"a":-0}`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":1E+2}`,
		`{"a":1e-2}`, `{"a":00}`, `{"a":tru}`, `{"a":true}`, `{"a":nul}`, `{"a":"\u12"}`, `{"a":"\u12ab"}`,
		`{"a":"\ud800"}`, `{"a":"\ud83d\ude00"}`, `{"a":"tab	raw"}`, `{"a":"\/"}`, `{"a":[1,2,]}`, `{"a":[]}`,
		`{"a":[[],{}]}`, `{"a":{"b":{"c":[1,"x",null,true,false,{"d":-1.5}]}}}`, `{"a" 1}`, `{"a":1 "b":2}`,
		`{,}`, `{"a":1}}`, `{"a":[1}`, `{"a":{"b"}}`, `{"a":{"b":}}`, "{\"a\":1}\n", `{"a":"x"}  {}`,
		`"str"`, `123`, `null`, `{"\u0000":1}`, `{"a":"é"}`, `{"a":1,"a":2}`, `{"a":123456789012345678901234567890}`,
	}
	p := newProc(t, "json_to_arrow", nil).(*jsonToArrow)
	for _, in := range inputs {
		var v any
		werr := json.Unmarshal([]byte(in), &v)
		want, isObject := v.(map[string]any)
		if werr == nil && !isObject {
			werr = fmt.Errorf("not an object")
		}
		out := process(t, p, message.FromStrings(in))
		good, bad := splitResults(t, out)
		if (werr == nil) != (good != nil) || (werr != nil) != (bad != nil) {
			t.Errorf("%s: encoding/json err=%v, scanner good=%v bad=%v", in, werr, good != nil, jsonRows(bad))
			continue
		}
		if good == nil {
			continue
		}
		// Compare values through JSON.
		var got map[string]any
		if err := json.Unmarshal([]byte(jsonRows(good)[0]), &got); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		for k, v := range want {
			switch v := v.(type) {
			case map[string]any, []any:
				var g any
				if err := json.Unmarshal([]byte(got[k].(string)), &g); err != nil || !reflect.DeepEqual(g, v) {
					t.Errorf("%s: key %s = %v, want %v", in, k, got[k], v)
				}
			default:
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("%s: key %s = %#v, want %#v", in, k, got[k], v)
				}
			}
		}
	}
}

func FuzzJSONToArrow(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[{"c":"\u00e9"}]}`, `{"a":1e5}`, `{"a":"x\"y"}`, `{`, `{"a":[1,2`} {
		f.Add(s)
	}
	p := newProc(f, "json_to_arrow", nil)
	f.Fuzz(func(t *testing.T, s string) {
		out, err := p.Process(t.Context(), message.FromStrings(s))
		if err != nil {
			t.Fatal(err)
		}
		valid := json.Valid([]byte(s)) && strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "{")
		good, bad := splitResults(t, out)
		switch {
		case !valid && good != nil:
			t.Fatalf("%q: invalid JSON accepted", s)
		case valid && good == nil:
			// The only valid object rejected has a top-level number beyond float64.
			if msg := strs(t, bad, message.MetaError)[0]; !strings.Contains(msg, "out of the float64 range") {
				t.Fatalf("%q: valid JSON rejected: %s", s, msg)
			}
		}
	})
}

func jsonBenchRows(n int) [][]byte {
	rows := make([][]byte, n)
	for i := range rows {
		rows[i] = fmt.Appendf(nil, `{"id":%d,"user":"user-%d","amount":%d.%02d,"active":%v,"tags":["a","b"],"note":"line with \"quotes\""}`,
			i, i%1000, i%500, i%100, i%2 == 0)
	}
	return rows
}

func BenchmarkJSONToArrow(b *testing.B) {
	rows := jsonBenchRows(4096)
	in := message.FromValues(rows)
	size := int64(message.AsBinary(in.Column(message.ValueColumn)).TotalBytes())
	b.Run("scanner", func(b *testing.B) {
		p := newProc(b, "json_to_arrow", nil)
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Process(b.Context(), in); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
	})
	// Baseline: only decoding each row into a map with encoding/json.
	b.Run("encoding-json-map-baseline", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			for _, r := range rows {
				var m map[string]any
				if err := json.Unmarshal(r, &m); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
	})
}
