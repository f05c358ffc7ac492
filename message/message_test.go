package message

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

func TestTotalBytesOfSlices(t *testing.T) {
	b := FromStrings("ab", "cde", "", "fghi")
	if got := b.Values().TotalBytes(); got != 9 {
		t.Fatalf("TotalBytes = %d, want 9", got)
	}
	s := b.Slice(1, 3)
	if got := s.Values().TotalBytes(); got != 3 {
		t.Fatalf("slice TotalBytes = %d, want 3", got)
	}
	if got := string(s.Values().Bytes(0)); got != "cde" {
		t.Fatalf("slice value = %q", got)
	}
}

func TestRowEncoderJSON(t *testing.T) {
	ib := array.NewInt64Builder(Alloc)
	ib.AppendValues([]int64{1, 2}, []bool{true, false})
	sb := array.NewStringBuilder(Alloc)
	sb.AppendValues([]string{"a\"b\n", "é"}, nil)
	mb := array.NewStringBuilder(Alloc)
	mb.AppendValues([]string{"x", "y"}, nil)
	schema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}, {Name: "s", Type: arrow.BinaryTypes.String}, {Name: MetaKey, Type: arrow.BinaryTypes.String}}, nil)
	b := New(array.NewRecordBatch(schema, []arrow.Array{ib.NewArray(), sb.NewArray(), mb.NewArray()}, 2))
	var got []string
	var enc RowEncoder
	if err := enc.Rows(b, func(_ int, p []byte) error { got = append(got, string(p)); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{`{"n":1,"s":"a\"b\n"}`, `{"n":null,"s":"é"}`}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("row %d = %s, want %s", i, got[i], want[i])
		}
	}
}

func TestWithColumnAndWithout(t *testing.T) {
	b := FromStrings("a", "b")
	sb := array.NewStringBuilder(Alloc)
	sb.AppendValues([]string{"e1", "e2"}, nil)
	e := b.WithColumn(MetaError, sb.NewArray())
	if !e.IsError() || b.IsError() {
		t.Fatal("WithColumn must add the error column to a new batch only")
	}
	if e.Without(MetaError).IsError() {
		t.Fatal("Without did not remove the column")
	}
}

func TestTake(t *testing.T) {
	b := FromStrings("a", "b", "c", "d")
	ib := array.NewInt64Builder(Alloc)
	ib.AppendValues([]int64{1, 2, 3, 4}, nil)
	fb := array.NewFloat64Builder(Alloc)
	fb.AppendValues([]float64{1.5, 2.5, 3.5, 4.5}, nil)
	b = b.WithColumn("n", ib.NewArray()).WithColumn("f", fb.NewArray())
	got, err := Take(b, []int32{3, 1})
	if err != nil {
		t.Fatal(err)
	}
	if got.NumRows() != 2 || got.Values().String(0) != "d" || got.Values().String(1) != "b" {
		t.Fatalf("values = %v", got.Record())
	}
	if n := got.Column("n").(*array.Int64); n.Value(0) != 4 || n.Value(1) != 2 {
		t.Fatalf("n = %v", n)
	}
	if f := got.Column("f").(*array.Float64); f.Value(0) != 4.5 {
		t.Fatalf("f = %v", f)
	}
}
