package message

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Row selection: Take builds a batch of chosen rows (the keyed exchange
// partitions batches with it; filter, mapping and dedupe keep good rows).

// Contiguous reports whether idx is the run start, start+1, ..., and start.
func Contiguous(idx []int32) (int, bool) {
	if len(idx) == 0 {
		return 0, true
	}
	start := idx[0]
	for i, v := range idx {
		if v != start+int32(i) {
			return 0, false
		}
	}
	return int(start), true
}

// TakeColumn returns the values of col at the given row indices, in order
// (an index may repeat). A contiguous run is a zero-copy slice; binary,
// string, boolean and fixed-width columns are gathered in one pass; other
// types are concatenated from slices.
func TakeColumn(col arrow.Array, idx []int32) (arrow.Array, error) {
	if start, ok := Contiguous(idx); ok {
		return array.NewSlice(col, int64(start), int64(start+len(idx))), nil
	}
	switch dt := col.DataType(); dt.ID() {
	case arrow.BINARY, arrow.STRING:
		return takeBinary(col, AsBinary(col), idx), nil
	case arrow.NULL:
		return array.NewNull(len(idx)), nil
	case arrow.BOOL:
		return takeBool(col.(*array.Boolean), idx), nil
	default:
		if fw, ok := dt.(arrow.FixedWidthDataType); ok && fw.BitWidth() >= 8 && fw.BitWidth()%8 == 0 && len(col.Data().Buffers()) == 2 {
			return takeFixedWidth(col, fw.BitWidth()/8, idx), nil
		}
	}
	return takeBySlices(col, idx)
}

// takeValidity returns the validity bitmap of col at idx, or nil when no
// value is null.
func takeValidity(col arrow.Array, idx []int32) ([]byte, int) {
	if col.NullN() == 0 {
		return nil, 0
	}
	valid := make([]byte, bitmapBytes(len(idx)))
	nulls := 0
	for j, i := range idx {
		if col.IsNull(int(i)) {
			nulls++
			continue
		}
		valid[j>>3] |= 1 << (j & 7)
	}
	if nulls == 0 {
		return nil, 0
	}
	return valid, nulls
}

func takeFixedWidth(col arrow.Array, width int, idx []int32) arrow.Array {
	data := col.Data()
	src := data.Buffers()[1].Bytes()[data.Offset()*width:]
	out := make([]byte, len(idx)*width)
	switch width {
	case 8:
		s, d := arrow.Int64Traits.CastFromBytes(src), arrow.Int64Traits.CastFromBytes(out)
		for j, i := range idx {
			d[j] = s[i]
		}
	case 4:
		s, d := arrow.Int32Traits.CastFromBytes(src), arrow.Int32Traits.CastFromBytes(out)
		for j, i := range idx {
			d[j] = s[i]
		}
	default:
		for j, i := range idx {
			copy(out[j*width:(j+1)*width], src[int(i)*width:])
		}
	}
	valid, nulls := takeValidity(col, idx)
	var vb *memory.Buffer
	if nulls > 0 {
		vb = memory.NewBufferBytes(valid)
	}
	ad := array.NewData(col.DataType(), len(idx), []*memory.Buffer{vb, memory.NewBufferBytes(out)}, nil, nulls, 0)
	defer ad.Release()
	return array.MakeFromData(ad)
}

func takeBool(col *array.Boolean, idx []int32) arrow.Array {
	out := make([]byte, bitmapBytes(len(idx)))
	for j, i := range idx {
		if col.Value(int(i)) {
			out[j>>3] |= 1 << (j & 7)
		}
	}
	valid, nulls := takeValidity(col, idx)
	var vb *memory.Buffer
	if nulls > 0 {
		vb = memory.NewBufferBytes(valid)
	}
	ad := array.NewData(col.DataType(), len(idx), []*memory.Buffer{vb, memory.NewBufferBytes(out)}, nil, nulls, 0)
	defer ad.Release()
	return array.MakeFromData(ad)
}

// takeBySlices gathers any column type by concatenating slices of runs of
// consecutive indices.
func takeBySlices(col arrow.Array, idx []int32) (arrow.Array, error) {
	var parts []arrow.Array
	for j := 0; j < len(idx); {
		k := j + 1
		for k < len(idx) && idx[k] == idx[k-1]+1 {
			k++
		}
		parts = append(parts, array.NewSlice(col, int64(idx[j]), int64(idx[k-1])+1))
		j = k
	}
	defer func() {
		for _, a := range parts {
			a.Release()
		}
	}()
	if len(parts) == 0 {
		return array.MakeArrayOfNull(Alloc, col.DataType(), 0), nil
	}
	return array.Concatenate(parts, Alloc)
}

// takeBinary is TakeColumn for binary and string columns, in one pass with
// one data buffer.
func takeBinary(col arrow.Array, bc *BinaryColumn, idx []int32) arrow.Array {
	size := 0
	for _, i := range idx {
		size += len(bc.Bytes(int(i)))
	}
	valid, nulls := takeValidity(col, idx)
	offsets := make([]int32, len(idx)+1)
	data := make([]byte, 0, size)
	for j, i := range idx {
		if nulls == 0 || !col.IsNull(int(i)) {
			data = append(data, bc.Bytes(int(i))...)
		}
		offsets[j+1] = int32(len(data))
	}
	return NewBinaryArray(col.DataType(), offsets, data, valid, nulls)
}

func bitmapBytes(n int) int { return (n + 7) / 8 }

// NewBinaryArray wraps Go slices as a binary or string array without
// copying. valid may be nil when nulls is 0.
func NewBinaryArray(dt arrow.DataType, offsets []int32, data, valid []byte, nulls int) arrow.Array {
	var vb *memory.Buffer
	if nulls > 0 {
		vb = memory.NewBufferBytes(valid)
	}
	ad := array.NewData(dt, len(offsets)-1, []*memory.Buffer{
		vb,
		memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offsets)),
		memory.NewBufferBytes(data),
	}, nil, nulls, 0)
	defer ad.Release()
	return array.MakeFromData(ad)
}

// Take returns the rows of b at idx as a new batch (acks not copied).
func Take(b *Batch, idx []int32) (*Batch, error) {
	rec := b.Record()
	if len(idx) == int(rec.NumRows()) {
		if start, ok := Contiguous(idx); ok && start == 0 {
			return b.Slice(0, len(idx)), nil
		}
	}
	cols := make([]arrow.Array, rec.NumCols())
	for i := range cols {
		c, err := TakeColumn(rec.Column(i), idx)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", rec.ColumnName(i), err)
		}
		cols[i] = c
	}
	out := New(array.NewRecordBatch(rec.Schema(), cols, int64(len(idx))))
	out.Pos = b.Pos
	return out, nil
}
