package processors

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/weir-stream/weir/message"
)

// Helpers shared by the processors of this package.

// contiguous reports whether idx is the run start, start+1, ..., and start.
func contiguous(idx []int32) (int, bool) {
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

// takeColumn returns the values of col at the given row indices, in order
// (an index may repeat). A contiguous run is a zero-copy slice; binary,
// string, boolean and fixed-width columns are gathered in one pass; other
// types are concatenated from slices.
func takeColumn(col arrow.Array, idx []int32) (arrow.Array, error) {
	if start, ok := contiguous(idx); ok {
		return array.NewSlice(col, int64(start), int64(start+len(idx))), nil
	}
	switch dt := col.DataType(); dt.ID() {
	case arrow.BINARY, arrow.STRING:
		return takeBinary(col, message.AsBinary(col), idx), nil
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
	valid := make([]byte, bitutilBytes(len(idx)))
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
	out := make([]byte, bitutilBytes(len(idx)))
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
		return array.MakeArrayOfNull(message.Alloc, col.DataType(), 0), nil
	}
	return array.Concatenate(parts, message.Alloc)
}

// takeBinary is takeColumn for binary and string columns, in one pass with
// one data buffer.
func takeBinary(col arrow.Array, bc *message.BinaryColumn, idx []int32) arrow.Array {
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
	return newBinaryArray(col.DataType(), offsets, data, valid, nulls)
}

func bitutilBytes(n int) int { return (n + 7) / 8 }

// newBinaryArray wraps Go slices as a binary or string array without
// copying. valid may be nil when nulls is 0.
func newBinaryArray(dt arrow.DataType, offsets []int32, data, valid []byte, nulls int) arrow.Array {
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

// takeBatch returns the rows of b at idx as a new batch (acks not copied).
func takeBatch(b *message.Batch, idx []int32) (*message.Batch, error) {
	rec := b.Record()
	if len(idx) == int(rec.NumRows()) {
		if start, ok := contiguous(idx); ok && start == 0 {
			return b.Slice(0, len(idx)), nil
		}
	}
	cols := make([]arrow.Array, rec.NumCols())
	for i := range cols {
		c, err := takeColumn(rec.Column(i), idx)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", rec.ColumnName(i), err)
		}
		cols[i] = c
	}
	out := message.New(array.NewRecordBatch(rec.Schema(), cols, int64(len(idx))))
	out.Pos = b.Pos
	return out, nil
}

// rowFailures collects the rows of a batch that failed, with their error
// text, and splits the batch into the good rows and an error batch.
type rowFailures struct {
	rows []int32
	msgs []string
}

func (f *rowFailures) add(row int, msg string) {
	f.rows = append(f.rows, int32(row))
	f.msgs = append(f.msgs, msg)
}

func (f *rowFailures) len() int { return len(f.rows) }

func (f *rowFailures) reset() {
	f.rows = f.rows[:0]
	f.msgs = f.msgs[:0]
}

// errorBatch returns the failed rows of b with their original columns and a
// __meta_error string column holding each row's error (nil if none failed).
// The rows must have been added in increasing order.
func (f *rowFailures) errorBatch(b *message.Batch) (*message.Batch, error) {
	if len(f.rows) == 0 {
		return nil, nil
	}
	eb, err := takeBatch(b, f.rows)
	if err != nil {
		return nil, err
	}
	bld := array.NewStringBuilder(message.Alloc)
	defer bld.Release()
	bld.AppendValues(f.msgs, nil)
	return eb.WithColumn(message.MetaError, bld.NewArray()), nil
}

// goodRows returns the indices of the rows of an n-row batch that did not
// fail, appended to dst.
func (f *rowFailures) goodRows(dst []int32, n int) []int32 {
	next := 0
	for r := 0; r < n; r++ {
		if next < len(f.rows) && f.rows[next] == int32(r) {
			next++
			continue
		}
		dst = append(dst, int32(r))
	}
	return dst
}

// results returns the non-empty batches among good and bad, good first (the
// engine attaches the input's acks to the last batch returned).
func results(good, bad *message.Batch) []*message.Batch {
	out := make([]*message.Batch, 0, 2)
	if good != nil && good.NumRows() > 0 {
		out = append(out, good)
	}
	if bad != nil && bad.NumRows() > 0 {
		out = append(out, bad)
	}
	return out
}

// replaceColumns returns rec with the given columns added or replaced (in
// place when the name exists, appended otherwise) and the drop columns
// removed.
func replaceColumns(rec arrow.RecordBatch, names []string, cols []arrow.Array, drop map[string]bool) arrow.RecordBatch {
	schema := rec.Schema()
	byName := make(map[string]int, len(names))
	for i, n := range names {
		byName[n] = i
	}
	fields := make([]arrow.Field, 0, len(schema.Fields())+len(names))
	out := make([]arrow.Array, 0, cap(fields))
	used := make([]bool, len(names))
	for i, f := range schema.Fields() {
		if drop[f.Name] {
			continue
		}
		if j, ok := byName[f.Name]; ok {
			if used[j] {
				continue
			}
			used[j] = true
			fields = append(fields, arrow.Field{Name: f.Name, Type: cols[j].DataType(), Nullable: true})
			out = append(out, cols[j])
			continue
		}
		fields = append(fields, f)
		out = append(out, rec.Column(i))
	}
	for j, n := range names {
		if used[j] || drop[n] {
			continue
		}
		fields = append(fields, arrow.Field{Name: n, Type: cols[j].DataType(), Nullable: true})
		out = append(out, cols[j])
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), out, rec.NumRows())
}
