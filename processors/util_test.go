package processors

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/message"
)

// TestTakeColumn gathers every kind of column (fixed width, bool, binary,
// string, nested, null, sliced) and compares with the values read directly.
func TestTakeColumn(t *testing.T) {
	mem := message.Alloc
	i32 := array.NewInt32Builder(mem)
	i32.AppendValues([]int32{1, 2, 3, 4, 5}, []bool{true, false, true, true, true})
	f64 := array.NewFloat64Builder(mem)
	f64.AppendValues([]float64{1.5, 2.5, 3.5, 4.5, 5.5}, nil)
	ts := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Millisecond})
	ts.AppendValues([]arrow.Timestamp{10, 20, 30, 40, 50}, nil)
	bl := array.NewBooleanBuilder(mem)
	bl.AppendValues([]bool{true, false, true, false, true}, []bool{true, true, false, true, true})
	bin := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
	bin.AppendValues([][]byte{[]byte("a"), nil, []byte("ccc"), []byte(""), []byte("eeeee")}, []bool{true, false, true, true, true})
	str := array.NewStringBuilder(mem)
	str.AppendValues([]string{"v", "w", "x", "y", "z"}, nil)
	lst := array.NewListBuilder(mem, arrow.PrimitiveTypes.Int64)
	for i := 0; i < 5; i++ {
		lst.Append(true)
		for j := 0; j <= i; j++ {
			lst.ValueBuilder().(*array.Int64Builder).Append(int64(j))
		}
	}
	u8 := array.NewUint8Builder(mem)
	u8.AppendValues([]uint8{9, 8, 7, 6, 5}, nil)
	cols := map[string]arrow.Array{
		"int32": i32.NewArray(), "float64": f64.NewArray(), "timestamp": ts.NewArray(), "bool": bl.NewArray(),
		"binary": bin.NewArray(), "string": str.NewArray(), "list": lst.NewArray(), "null": array.NewNull(5),
		"uint8": u8.NewArray(),
	}
	for _, name := range slices.Collect(maps.Keys(cols)) {
		cols[name+"-sliced"] = array.NewSlice(cols[name], 1, 5)
	}
	for name, col := range cols {
		n := col.Len()
		for _, idx := range [][]int32{{0, 0, 2, 1, int32(n - 1)}, {int32(n - 1), 0}, {1, 2, 3}, {}} {
			t.Run(fmt.Sprintf("%s/%v", name, idx), func(t *testing.T) {
				got, err := message.TakeColumn(col, idx)
				if err != nil {
					t.Fatal(err)
				}
				if got.Len() != len(idx) || !arrow.TypeEqual(got.DataType(), col.DataType()) {
					t.Fatalf("len %d type %s", got.Len(), got.DataType())
				}
				for j, i := range idx {
					if got.IsNull(j) != col.IsNull(int(i)) || got.ValueStr(j) != col.ValueStr(int(i)) {
						t.Fatalf("row %d: got %q (null %v), want %q (null %v)", j, got.ValueStr(j), got.IsNull(j), col.ValueStr(int(i)), col.IsNull(int(i)))
					}
				}
			})
		}
	}
}
