package processors

import (
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/config"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state/kv"
)

// parseProcConf builds a processor config from YAML with defaults applied.
func parseProcConf(t testing.TB, yaml string) *component.Config {
	t.Helper()
	c, err := config.ParseComponent(component.KindProcessor, yaml)
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	return c
}

func nullableInt64(vals []int64, valid []bool) arrow.Array {
	b := array.NewInt64Builder(message.Alloc)
	b.AppendValues(vals, valid)
	return b.NewArray()
}

func nullableFloat64(vals []float64, valid []bool) arrow.Array {
	b := array.NewFloat64Builder(message.Alloc)
	b.AppendValues(vals, valid)
	return b.NewArray()
}

func nullableString(vals []string, valid []bool) arrow.Array {
	b := array.NewStringBuilder(message.Alloc)
	b.AppendValues(vals, valid)
	return b.NewArray()
}

// foldAll folds every row of b into one aggRow for specs.
func foldAll(t *testing.T, specs []aggSpec, b *message.Batch) aggRow {
	t.Helper()
	r := newAggReader(specs)
	if err := r.bind(b); err != nil {
		t.Fatal(err)
	}
	row := make(aggRow, len(specs))
	for i := 0; i < b.NumRows(); i++ {
		if err := r.add(row, i); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
	}
	return row
}

func aggResults(specs []aggSpec, row aggRow) []aggValue {
	out := make([]aggValue, len(specs))
	for j, s := range specs {
		out[j] = row[j].result(s.Func)
	}
	return out
}

func TestAggFunctions(t *testing.T) {
	valid := []bool{true, false, true, true, true}
	b := record([]string{"i", "f", "s"},
		nullableInt64([]int64{3, 99, -1, 7, 2}, valid),
		nullableFloat64([]float64{1.5, 99, 0.25, -2, 4}, valid),
		nullableString([]string{"b", "zz", "a", "c", "b"}, valid),
	)
	iv := func(i int64) aggValue { return aggValue{K: aggInt, I: i} }
	fv := func(f float64) aggValue { return aggValue{K: aggFloat, F: f} }
	sv := func(s string) aggValue { return aggValue{K: aggString, S: s} }
	cases := []struct {
		fn, field string
		want      aggValue
	}{
		{"count", "", iv(5)},
		{"count", "i", iv(4)}, // nulls are not counted
		{"sum", "i", iv(11)},  // int column: int64 result
		{"sum", "f", fv(3.75)},
		{"min", "i", iv(-1)},
		{"max", "i", iv(7)},
		{"min", "f", fv(-2)},
		{"max", "f", fv(4)},
		{"avg", "i", fv(11.0 / 4)},
		{"avg", "f", fv(3.75 / 4)},
		{"first", "i", iv(3)},
		{"last", "i", iv(2)},
		{"first", "s", sv("b")},
		{"last", "s", sv("b")},
		{"min", "s", sv("a")}, // strings that are not numbers compare as strings
		{"max", "s", sv("c")},
		{"first", "f", fv(1.5)},
		{"last", "f", fv(4)},
	}
	for _, c := range cases {
		spec := aggSpec{Field: c.field, As: "x"}
		spec.Func, _ = parseAggFunc(c.fn)
		specs := []aggSpec{spec}
		got := aggResults(specs, foldAll(t, specs, b))[0]
		if got != c.want {
			t.Errorf("%s(%s) = %+v, want %+v", c.fn, c.field, got, c.want)
		}
	}
}

func TestAggAllNullAndMissing(t *testing.T) {
	b := record([]string{"i"}, nullableInt64([]int64{1, 2}, []bool{false, false}))
	for _, field := range []string{"i", "nosuchcolumn"} {
		for _, fn := range []aggFunc{aggSum, aggMin, aggMax, aggAvg, aggFirst, aggLast} {
			specs := []aggSpec{{Func: fn, Field: field, As: "x"}}
			if got := aggResults(specs, foldAll(t, specs, b))[0]; got.K != aggNone {
				t.Errorf("%s(%s) of nulls = %+v, want null", fn, field, got)
			}
		}
		specs := []aggSpec{{Func: aggCount, Field: field, As: "x"}}
		if got := aggResults(specs, foldAll(t, specs, b))[0]; got != (aggValue{K: aggInt, I: 0}) {
			t.Errorf("count(%s) of nulls = %+v, want 0", field, got)
		}
	}
}

func TestAggMultipleAtOnce(t *testing.T) {
	b := record([]string{"i", "f"}, int64Col(1, 2, 3), nullableFloat64([]float64{0.5, 1, 2}, nil))
	specs := []aggSpec{
		{Func: aggCount, As: "n"}, {Func: aggSum, Field: "i", As: "si"}, {Func: aggSum, Field: "f", As: "sf"},
		{Func: aggMax, Field: "f", As: "mf"}, {Func: aggLast, Field: "i", As: "li"},
	}
	got := aggResults(specs, foldAll(t, specs, b))
	want := []aggValue{{K: aggInt, I: 3}, {K: aggInt, I: 6}, {K: aggFloat, F: 3.5}, {K: aggFloat, F: 2}, {K: aggInt, I: 3}}
	for j := range want {
		if got[j] != want[j] {
			t.Errorf("%s = %+v, want %+v", specs[j].As, got[j], want[j])
		}
	}
}

func TestAggStringNumbers(t *testing.T) {
	// CSV input gives strings: sum, avg, min and max read numbers in them.
	b := record([]string{"s"}, stringCol("10", " 9 ", "2.5"))
	for fn, want := range map[aggFunc]aggValue{
		aggSum: {K: aggFloat, F: 21.5},
		aggMin: {K: aggFloat, F: 2.5},
		aggMax: {K: aggInt, I: 10}, // numerically, not "9" > "10"
		aggAvg: {K: aggFloat, F: 21.5 / 3},
	} {
		specs := []aggSpec{{Func: fn, Field: "s", As: "x"}}
		if got := aggResults(specs, foldAll(t, specs, b))[0]; got != want {
			t.Errorf("%s = %+v, want %+v", fn, got, want)
		}
	}

	// A value sum cannot read fails its row and leaves the row unchanged.
	bad := record([]string{"s", "i"}, stringCol("1", "x", "2"), int64Col(1, 1, 1))
	specs := []aggSpec{{Func: aggCount, As: "n"}, {Func: aggSum, Field: "i", As: "si"}, {Func: aggSum, Field: "s", As: "ss"}}
	r := newAggReader(specs)
	if err := r.bind(bad); err != nil {
		t.Fatal(err)
	}
	row := make(aggRow, len(specs))
	var errs []string
	for i := 0; i < 3; i++ {
		if err := r.add(row, i); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) != 1 || !strings.Contains(errs[0], `"x" in column "s" is not a number`) {
		t.Fatalf("errors %q", errs)
	}
	got := aggResults(specs, row)
	if got[0].I != 2 || got[1].I != 2 || got[2].I != 3 {
		t.Fatalf("after a failed row: %+v, want count 2, sums 2 and 3", got)
	}
}

func TestAggBindErrors(t *testing.T) {
	lb := array.NewListBuilder(message.Alloc, arrow.PrimitiveTypes.Int64)
	lb.Append(true)
	b := record([]string{"l", "b"}, lb.NewArray(), func() arrow.Array {
		bb := array.NewBooleanBuilder(message.Alloc)
		bb.Append(true)
		return bb.NewArray()
	}())
	if err := newAggReader([]aggSpec{{Func: aggSum, Field: "l", As: "x"}}).bind(b); err == nil {
		t.Error("sum of a list column: want an error")
	}
	if err := newAggReader([]aggSpec{{Func: aggSum, Field: "b", As: "x"}}).bind(b); err == nil {
		t.Error("sum of a bool column: want an error")
	}
	specs := []aggSpec{{Func: aggLast, Field: "b", As: "x"}}
	if got := aggResults(specs, foldAll(t, specs, b))[0]; got != (aggValue{K: aggBool, I: 1}) {
		t.Errorf("last of a bool column = %+v", got)
	}
}

func TestAggSumOverflowTurnsFloat(t *testing.T) {
	b := record([]string{"i"}, int64Col(math.MaxInt64, 10))
	specs := []aggSpec{{Func: aggSum, Field: "i", As: "x"}}
	got := aggResults(specs, foldAll(t, specs, b))[0]
	if got.K != aggFloat || got.F != float64(math.MaxInt64)+10 {
		t.Fatalf("overflowing sum = %+v, want a float", got)
	}
}

func TestAggMerge(t *testing.T) {
	specs := []aggSpec{
		{Func: aggCount, As: "n"}, {Func: aggSum, Field: "v", As: "s"}, {Func: aggMin, Field: "v", As: "mi"},
		{Func: aggMax, Field: "v", As: "ma"}, {Func: aggAvg, Field: "v", As: "a"},
		{Func: aggFirst, Field: "v", As: "f"}, {Func: aggLast, Field: "v", As: "l"},
	}
	all := record([]string{"v"}, nullableFloat64([]float64{4, 1, 9, 0, 2.5}, []bool{true, true, true, false, true}))
	whole := foldAll(t, specs, all)
	a := foldAll(t, specs, all.Slice(0, 2))
	empty := make(aggRow, len(specs))
	b := foldAll(t, specs, all.Slice(2, 5))
	merged := empty.clone()
	merged.merge(specs, a)
	merged.merge(specs, b)
	merged.merge(specs, make(aggRow, len(specs)))
	if got, want := aggResults(specs, merged), aggResults(specs, whole); !equalValues(got, want) {
		t.Fatalf("merged %+v, want %+v", got, want)
	}
	// Integer sums merge exactly.
	ints := record([]string{"v"}, int64Col(1, 2, 3))
	x, y := foldAll(t, specs[1:2], ints.Slice(0, 1)), foldAll(t, specs[1:2], ints.Slice(1, 3))
	x.merge(specs[1:2], y)
	if got := x[0].result(aggSum); got != (aggValue{K: aggInt, I: 6}) {
		t.Fatalf("merged int sum %+v", got)
	}
}

func equalValues(a, b []aggValue) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAggAccCBORRoundTrip(t *testing.T) {
	row := aggRow{{N: 3, I: 7, F: 0.5, FL: true}, {N: 1, V: aggValue{K: aggString, S: "héllo"}}, {}}
	data, err := kv.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	var back aggRow
	if err := kv.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 3 || back[0] != row[0] || back[1] != row[1] || back[2] != row[2] {
		t.Fatalf("round trip: %+v, want %+v", back, row)
	}
	// Old data without a field (evolution) decodes with its zero value.
	old, _ := kv.Marshal(map[string]any{"n": 5})
	var acc aggAcc
	if err := kv.Unmarshal(old, &acc); err != nil || acc.N != 5 {
		t.Fatalf("decode old accumulator: %+v, %v", acc, err)
	}
}

func TestParseAggregates(t *testing.T) {
	c := parseProcConf(t, `
type: aggregate
group_by: k
aggregates:
  - function: count
  - function: sum
    field: amount
  - {function: max, field: amount, as: top}
`)
	specs, err := parseAggregates(c)
	if err != nil {
		t.Fatal(err)
	}
	want := []aggSpec{{Func: aggCount, As: "count"}, {Func: aggSum, Field: "amount", As: "sum_amount"}, {Func: aggMax, Field: "amount", As: "top"}}
	if len(specs) != len(want) {
		t.Fatalf("specs %+v", specs)
	}
	for i := range want {
		if specs[i] != want[i] {
			t.Errorf("spec %d = %+v, want %+v", i, specs[i], want[i])
		}
	}
	if sig := aggSignature(specs); sig != "count,sum(amount),max(amount)" {
		t.Errorf("signature %q", sig)
	}

	// Defaults: one count named count.
	specs, err = parseAggregates(parseProcConf(t, "type: aggregate\ngroup_by: k\n"))
	if err != nil || len(specs) != 1 || specs[0] != (aggSpec{Func: aggCount, As: "count"}) {
		t.Fatalf("default aggregates %+v, %v", specs, err)
	}

	for yaml, msg := range map[string]string{
		"aggregates: [{function: sum}]":                                           "sum needs a field",
		"aggregates: [{function: count}, {function: count, field: x, as: count}]": `output column "count" is already used`,
		"aggregates: []": "at least one aggregate",
	} {
		c := parseProcConf(t, "type: aggregate\ngroup_by: k\n"+yaml+"\n")
		_, err := parseAggregates(c)
		if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "component.yaml:") {
			t.Errorf("%s: error %v, want %q with a file:line", yaml, err, msg)
		}
	}
	if _, err := config.ParseComponent(component.KindProcessor, "type: aggregate\ngroup_by: k\naggregates: [{function: median, field: x}]\n"); err == nil {
		t.Error("unknown function: want a config error")
	}
}

func TestAggOutputColumnTypes(t *testing.T) {
	specs := []aggSpec{
		{Func: aggCount, As: "n"}, {Func: aggSum, Field: "x", As: "s"}, {Func: aggAvg, Field: "x", As: "a"},
		{Func: aggFirst, Field: "x", As: "f"}, {Func: aggMax, Field: "x", As: "m"},
	}
	o := newAggOutput(specs)
	o.appendRow(aggRow{{N: 2}, {N: 2, I: 5}, {N: 2, I: 5}, {N: 1, V: aggValue{K: aggInt, I: 1}}, {N: 1, V: aggValue{K: aggInt, I: 4}}})
	o.appendRow(aggRow{{N: 0}, {}, {}, {}, {N: 1, V: aggValue{K: aggFloat, F: 1.5}}})
	o.appendRow(aggRow{{N: 1}, {N: 1, F: 0.5, FL: true}, {N: 1, F: 0.5, FL: true}, {N: 1, V: aggValue{K: aggString, S: "z"}}, {N: 1, V: aggValue{K: aggInt, I: 2}}})
	fields, cols := o.build()
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, 3)
	got := jsonRows(message.New(rec))
	want := []string{
		`{"n":2,"s":5,"a":2.5,"f":"1","m":4}`,
		`{"n":0,"s":null,"a":null,"f":null,"m":1.5}`,
		`{"n":1,"s":0.5,"a":0.5,"f":"z","m":2}`,
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d = %s, want %s", i, got[i], want[i])
		}
	}
	types := []arrow.Type{arrow.INT64, arrow.FLOAT64, arrow.FLOAT64, arrow.STRING, arrow.FLOAT64}
	for j, f := range fields {
		if f.Type.ID() != types[j] {
			t.Errorf("column %s is %s, want %s", f.Name, f.Type, types[j])
		}
	}
	if o.len() != 0 {
		t.Error("build did not start over")
	}
	// All-integer sums stay int64.
	o = newAggOutput(specs[1:2])
	o.appendRow(aggRow{{N: 1, I: 3}})
	if fields, _ := o.build(); fields[0].Type.ID() != arrow.INT64 {
		t.Errorf("integer sum column is %s", fields[0].Type)
	}
}

func TestGroupKey(t *testing.T) {
	ts := array.NewTimestampBuilder(message.Alloc, &arrow.TimestampType{Unit: arrow.Second})
	ts.AppendValues([]arrow.Timestamp{1, 2, 3}, nil)
	b := record([]string{"s", "i", "f", "t", "n"},
		stringCol("a", "b", "c"), int64Col(-1, 0, 7), nullableFloat64([]float64{0.5, 2, 1e21}, nil), ts.NewArray(),
		nullableString([]string{"x", "", "z"}, []bool{true, false, true}))
	cases := []struct {
		src  string
		want []string // "!" marks an error
	}{
		{"s", []string{"a", "b", "c"}},
		{"i", []string{"-1", "0", "7"}},
		{"f", []string{"0.5", "2", "1e+21"}},
		{"t", []string{"1000", "2000", "3000"}},
		{"n", []string{"x", "!", "z"}},
		{"missing", []string{"!", "!", "!"}},
		{`s + "-" + string(i)`, []string{"a--1", "b-0", "c-7"}},
		{"i * 2", []string{"-2", "0", "14"}},
		{"f", []string{"0.5", "2", "1e+21"}},
		{"n ?? nil", []string{"x", "!", "z"}},
	}
	for _, c := range cases {
		k, err := newGroupKey(c.src)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		if err := k.bind(b); err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		for i, w := range c.want {
			got, err := k.key(b, i)
			if w == "!" {
				if err == nil {
					t.Errorf("%s row %d: key %q, want an error", c.src, i, got)
				}
				continue
			}
			if err != nil || string(got) != w {
				t.Errorf("%s row %d: key %q, %v; want %q", c.src, i, got, err, w)
			}
		}
	}
	// An expression that reads a column gives the same bytes as the column.
	direct, _ := newGroupKey("f")
	viaExpr, _ := newGroupKey("f + 0.0")
	_ = direct.bind(b)
	_ = viaExpr.bind(b)
	for i := 0; i < 3; i++ {
		d, _ := direct.key(b, i)
		ds := string(d)
		e, _ := viaExpr.key(b, i)
		if ds != string(e) {
			t.Errorf("row %d: column key %q, expression key %q", i, ds, e)
		}
	}
	if _, err := newGroupKey("a +"); err == nil {
		t.Error("invalid expression: want an error")
	}
}
