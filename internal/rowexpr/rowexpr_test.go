package rowexpr

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/message"
)

// testBatch has two rows of every column type rowexpr reads; row 1 is null
// in the nullable columns.
func testBatch(t testing.TB) *message.Batch {
	t.Helper()
	mem := message.Alloc
	i64 := array.NewInt64Builder(mem)
	i64.AppendValues([]int64{42, 0}, []bool{true, false})
	i32 := array.NewInt32Builder(mem)
	i32.AppendValues([]int32{7, 8}, nil)
	f64 := array.NewFloat64Builder(mem)
	f64.AppendValues([]float64{1.5, 2.5}, nil)
	str := array.NewStringBuilder(mem)
	str.AppendValues([]string{"alice", "bob"}, nil)
	bl := array.NewBooleanBuilder(mem)
	bl.AppendValues([]bool{true, false}, nil)
	val := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
	val.AppendValues([][]byte{[]byte("hello world"), []byte("x")}, nil)
	part := array.NewInt32Builder(mem)
	part.AppendValues([]int32{3, 4}, nil)
	key := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
	key.AppendValues([][]byte{[]byte("k1"), []byte("k2")}, nil)
	tsType := &arrow.TimestampType{Unit: arrow.Microsecond}
	ts := array.NewTimestampBuilder(mem, tsType)
	ts.AppendValues([]arrow.Timestamp{1_700_000_000_123_456, 0}, nil)
	lst := array.NewListBuilder(mem, arrow.PrimitiveTypes.Int64)
	lst.Append(true)
	lst.ValueBuilder().(*array.Int64Builder).AppendValues([]int64{1, 2}, nil)
	lst.AppendNull()

	fields := []arrow.Field{
		{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "small", Type: arrow.PrimitiveTypes.Int32},
		{Name: "f", Type: arrow.PrimitiveTypes.Float64},
		{Name: "name", Type: arrow.BinaryTypes.String},
		{Name: "ok", Type: arrow.FixedWidthTypes.Boolean},
		{Name: message.ValueColumn, Type: arrow.BinaryTypes.Binary},
		{Name: message.MetaPartition, Type: arrow.PrimitiveTypes.Int32},
		{Name: message.MetaKey, Type: arrow.BinaryTypes.Binary},
		{Name: "ts", Type: tsType},
		{Name: "my col", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64), Nullable: true},
	}
	cols := []arrow.Array{i64.NewArray(), i32.NewArray(), f64.NewArray(), str.NewArray(), bl.NewArray(),
		val.NewArray(), part.NewArray(), key.NewArray(), ts.NewArray(), lst.NewArray()}
	return message.New(array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, 2))
}

func TestEvalValues(t *testing.T) {
	b := testBatch(t)
	tests := []struct {
		src  string
		row  int
		want any
	}{
		{"n", 0, int64(42)},
		{"n", 1, nil},
		{"small", 0, int64(7)},
		{"f", 1, 2.5},
		{"name", 0, "alice"},
		{"ok", 0, true},
		{"__value__", 0, "hello world"},
		{"content", 0, "hello world"},
		{"meta.partition", 0, int64(3)},
		{`meta["key"]`, 1, "k2"},
		{"ts", 0, int64(1_700_000_000_123)},
		{`$env["my col"]`, 0, "[1,2]"},
		{`$env["my col"]`, 1, nil},
		{"missing", 0, nil},
		{"missing == nil", 0, true},
		{"n == 42 && meta.partition == 3 && f == 1.5", 0, true},
		{"n + small", 0, int64(49)},
		{"n ?? -1", 1, int64(-1)},
		{"upper(name) + ':' + string(small)", 1, "BOB:8"},
		{`split(content, " ")[1]`, 0, "world"},
		{"sort(keys(meta))", 0, []any{"key", "partition"}},
		{"f > 2 ? 'big' : 'small'", 1, "big"},
		{"len(filter([1, 2, 3], # > small - 6))", 0, int64(2)},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, err := Compile(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Eval(b, tt.row)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%T %v", got, got) != fmt.Sprintf("%T %v", tt.want, tt.want) {
				t.Fatalf("got %T %v, want %T %v", got, got, tt.want, tt.want)
			}
		})
	}
}

func TestColumnsReferenced(t *testing.T) {
	p, err := Compile(`a + b > len(now() > 0 ? c : "x") && meta.partition == 1 && upper(d) != ""`)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Columns(), ","); got != "a,b,c,d" {
		t.Fatalf("columns %q", got)
	}
	if p.metaAll || strings.Join(p.metaKey, ",") != "partition" {
		t.Fatalf("meta all=%v keys=%v", p.metaAll, p.metaKey)
	}
}

func TestNow(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_000)
	p, err := Compile("now() - 1000", WithClock(func() time.Time { return at }))
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Eval(testBatch(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got != int64(1_699_999_999_000) {
		t.Fatalf("got %T %v", got, got)
	}
}

func TestSchemaChangeClearsColumns(t *testing.T) {
	p, err := Compile("name ?? 'none'")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := p.Eval(testBatch(t), 0); v != "alice" {
		t.Fatalf("first batch: %v", v)
	}
	if v, _ := p.Eval(message.FromStrings("a"), 0); v != "none" {
		t.Fatalf("batch without the column: %v", v)
	}
}

func TestEvalBool(t *testing.T) {
	b := testBatch(t)
	p, err := Compile("n > 10")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.EvalBool(b, 0); err != nil || !ok {
		t.Fatalf("row 0: %v %v", ok, err)
	}
	// nil > 10 is an expr runtime error.
	if _, err := p.EvalBool(b, 1); err == nil {
		t.Fatal("row 1: want error comparing null")
	}
	p, err = Compile("name")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.EvalBool(b, 0); err == nil || !strings.Contains(err.Error(), "not a bool") {
		t.Fatalf("want not-a-bool error, got %v", err)
	}
}

func TestExpectBool(t *testing.T) {
	if _, err := Compile("1 + 2", ExpectBool()); err == nil {
		t.Fatal("want compile error for an int expression")
	}
	for _, src := range []string{"x", "x > 1", "ok && true"} {
		if _, err := Compile(src, ExpectBool()); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
	}
	if _, err := Compile("x +"); err == nil {
		t.Fatal("want syntax error")
	}
	if _, err := Compile("  "); err == nil {
		t.Fatal("want error for an empty expression")
	}
}

func TestEvalColumn(t *testing.T) {
	b := testBatch(t)
	tests := []struct {
		src  string
		typ  arrow.DataType
		want string // ValueStr of each row, comma separated
	}{
		{"small * 2", arrow.PrimitiveTypes.Int64, "14,16"},
		{"small / 2", arrow.PrimitiveTypes.Float64, "3.5,4"},
		{"f > 2 ? 1 : 0.5", arrow.PrimitiveTypes.Float64, "0.5,1"},
		{"name + '!'", arrow.BinaryTypes.String, "alice!,bob!"},
		{"ok", arrow.FixedWidthTypes.Boolean, "true,false"},
		{"n", arrow.PrimitiveTypes.Int64, "42,(null)"},
		{"ok ? 1 : 'x'", arrow.BinaryTypes.String, "1,x"},
		{"missing", arrow.BinaryTypes.String, "(null),(null)"},
		{"[small, 1]", arrow.BinaryTypes.String, "[7,1],[8,1]"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, err := Compile(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			col, err := p.EvalColumn(b)
			if err != nil {
				t.Fatal(err)
			}
			if !arrow.TypeEqual(col.DataType(), tt.typ) {
				t.Fatalf("type %s, want %s", col.DataType(), tt.typ)
			}
			var got []string
			for i := 0; i < col.Len(); i++ {
				got = append(got, col.ValueStr(i))
			}
			if strings.Join(got, ",") != tt.want {
				t.Fatalf("got %q, want %q", strings.Join(got, ","), tt.want)
			}
		})
	}
}

func TestEvalColumnErrors(t *testing.T) {
	b := testBatch(t)
	p, err := Compile("n + 1") // row 1: nil + 1 fails
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.EvalColumn(b)
	var re *RowError
	if !errors.As(err, &re) || re.Row != 1 {
		t.Fatalf("want RowError on row 1, got %v", err)
	}
	var rows []int
	col := p.EvalColumnEach(b, func(row int, err error) { rows = append(rows, row) })
	if len(rows) != 1 || rows[0] != 1 {
		t.Fatalf("failed rows %v", rows)
	}
	if col.Len() != 2 || col.IsNull(0) || !col.IsNull(1) || col.(*array.Int64).Value(0) != 43 {
		t.Fatalf("column %v", col)
	}
}

func TestEvalColumnIdentityReusesColumn(t *testing.T) {
	b := testBatch(t)
	p, err := Compile("name")
	if err != nil {
		t.Fatal(err)
	}
	col, err := p.EvalColumn(b)
	if err != nil {
		t.Fatal(err)
	}
	if col != b.Column("name") {
		t.Fatal("a lone column reference should return the column itself")
	}
}

func TestClone(t *testing.T) {
	p, err := Compile("n ?? 0")
	if err != nil {
		t.Fatal(err)
	}
	c := p.Clone()
	b := testBatch(t)
	v1, _ := p.Eval(b, 0)
	v2, _ := c.Eval(message.FromStrings("x"), 0)
	v3, _ := p.Eval(b, 0)
	if v1 != int64(42) || v2 != int64(0) || v3 != int64(42) {
		t.Fatalf("got %v %v %v", v1, v2, v3)
	}
}

func TestBuildColumn(t *testing.T) {
	col := BuildColumn([]any{nil, 1, int64(2), 2.5})
	if col.DataType().ID() != arrow.FLOAT64 || !col.IsNull(0) || col.ValueStr(3) != "2.5" {
		t.Fatalf("numbers: %v", col)
	}
	col = BuildColumn([]any{"a", 1, true, nil, map[string]any{"x": 1}, time.Unix(0, 0).UTC()})
	want := []string{"a", "1", "true", "(null)", `{"x":1}`, "1970-01-01T00:00:00Z"}
	for i, w := range want {
		if col.ValueStr(i) != w {
			t.Fatalf("row %d: %q want %q", i, col.ValueStr(i), w)
		}
	}
}

// benchBatch has n rows of an int64 column x, a string column name and a
// __meta_partition column.
func benchBatch(n int) *message.Batch {
	x := array.NewInt64Builder(message.Alloc)
	name := array.NewStringBuilder(message.Alloc)
	part := array.NewInt32Builder(message.Alloc)
	for i := 0; i < n; i++ {
		x.Append(int64(i))
		name.Append(fmt.Sprintf("user-%d", i%100))
		part.Append(int32(i % 8))
	}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "x", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String},
		{Name: message.MetaPartition, Type: arrow.PrimitiveTypes.Int32},
	}, nil)
	return message.New(array.NewRecordBatch(schema, []arrow.Array{x.NewArray(), name.NewArray(), part.NewArray()}, int64(n)))
}

// BenchmarkRowexprEval measures per-row evaluation; ns/op is ns per row.
func BenchmarkRowexprEval(b *testing.B) {
	const rows = 8192
	batch := benchBatch(rows)
	for _, src := range []string{
		"x > 100",
		`x % 2 == 0 && name != "user-7"`,
		"meta.partition == 3",
	} {
		b.Run(src, func(b *testing.B) {
			p, err := Compile(src)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := p.EvalBool(batch, i%rows); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRowexprEvalColumn measures the batch path; ns/op is per batch
// of 8192 rows, ns/row is reported.
func BenchmarkRowexprEvalColumn(b *testing.B) {
	const rows = 8192
	batch := benchBatch(rows)
	for _, src := range []string{"x * 2", `name + "!"`} {
		b.Run(src, func(b *testing.B) {
			p, err := Compile(src)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := p.EvalColumn(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}
}
