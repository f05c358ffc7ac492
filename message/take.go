package message

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
)

// Take returns the rows of b at indices, in that order, as a new batch.
// Acknowledgements are not copied.
func Take(b *Batch, indices []int32) (*Batch, error) {
	if len(indices) == b.NumRows() && isIdentity(indices) {
		return &Batch{rec: b.rec, Pos: b.Pos}, nil
	}
	ib := array.NewInt32Builder(Alloc)
	ib.AppendValues(indices, nil)
	idx := ib.NewArray()
	defer idx.Release()
	rec := b.rec
	cols := make([]arrow.Array, rec.NumCols())
	ctx := context.Background()
	for i := range cols {
		col, err := takeColumn(ctx, rec.Column(i), indices, idx)
		if err != nil {
			return nil, fmt.Errorf("take column %s: %w", rec.ColumnName(i), err)
		}
		cols[i] = col
	}
	return &Batch{rec: array.NewRecordBatch(rec.Schema(), cols, int64(len(indices))), Pos: b.Pos}, nil
}

func isIdentity(indices []int32) bool {
	for i, v := range indices {
		if int(v) != i {
			return false
		}
	}
	return true
}

// takeColumn has fast paths for the column types on hot paths (binary,
// string, int64) and uses Arrow's compute kernels for the rest.
func takeColumn(ctx context.Context, col arrow.Array, indices []int32, idx arrow.Array) (arrow.Array, error) {
	switch c := col.(type) {
	case *array.Binary:
		bld := array.NewBinaryBuilder(Alloc, c.DataType().(arrow.BinaryDataType))
		bld.Reserve(len(indices))
		for _, i := range indices {
			if c.IsNull(int(i)) {
				bld.AppendNull()
			} else {
				bld.Append(c.Value(int(i)))
			}
		}
		return bld.NewArray(), nil
	case *array.String:
		bld := array.NewStringBuilder(Alloc)
		bld.Reserve(len(indices))
		for _, i := range indices {
			if c.IsNull(int(i)) {
				bld.AppendNull()
			} else {
				bld.Append(c.Value(int(i)))
			}
		}
		return bld.NewArray(), nil
	case *array.Int64:
		bld := array.NewInt64Builder(Alloc)
		bld.Reserve(len(indices))
		for _, i := range indices {
			if c.IsNull(int(i)) {
				bld.AppendNull()
			} else {
				bld.UnsafeAppend(c.Value(int(i)))
			}
		}
		return bld.NewArray(), nil
	}
	return compute.TakeArray(ctx, col, idx)
}
