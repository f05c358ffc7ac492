// Package message defines what flows through a weir pipeline: data batches
// (Arrow record batches) and the control events that travel in order with
// them (checkpoint barriers, watermarks, end of stream).
//
// Invariants:
//   - A Batch is never mutated after it has been handed to the next stage;
//     processors build new batches (sharing unchanged columns is fine).
//   - Control events are not data: a processor is never given a barrier,
//     a watermark or the end of stream inside a batch, and cannot drop one.
//   - weir allocates Arrow memory with the Go allocator, so Release is
//     optional: the garbage collector reclaims unreleased batches.
package message

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ValueColumn is the binary column that carries raw payloads, as in ArkFlow.
const ValueColumn = "__value__"

// MetaPrefix starts the name of every metadata column (source, partition,
// offset, key, timestamp, error).
const MetaPrefix = "__meta_"

// Well-known metadata columns.
const (
	MetaError     = MetaPrefix + "error"     // why a record failed a processor
	MetaSource    = MetaPrefix + "source"    // which input produced the record
	MetaPartition = MetaPrefix + "partition" // Kafka partition
	MetaOffset    = MetaPrefix + "offset"    // Kafka offset or file byte offset
	MetaKey       = MetaPrefix + "key"       // Kafka record key
	MetaTimestamp = MetaPrefix + "timestamp" // event time, epoch milliseconds
)

// Alloc is the allocator every weir component uses.
var Alloc memory.Allocator = memory.DefaultAllocator

// AckFunc is called once a batch read from an input, and everything derived
// from it, has been written by the output (err == nil), or could not be
// (err != nil; the input may then redeliver). It is called at most once.
type AckFunc func(ctx context.Context, err error) error

// Batch is a MessageBatch: an Arrow record batch plus the acknowledgements
// and source position that travel with it.
type Batch struct {
	rec  arrow.RecordBatch
	acks []AckFunc

	// Pos is the opaque position of the input just after this batch
	// (Kafka offsets, file byte offset, generator sequence, WAL LSN).
	// Only inputs set it; it is nil elsewhere.
	Pos []byte

	// KeyGroups, when not nil, holds the key group of each row's key,
	// computed by the engine's keyed exchange (NoKeyGroup for a row
	// without a key), so the keyed processor behind it need not hash the
	// key again. Nothing else sets it; a processor's output batches do
	// not carry it.
	KeyGroups []uint16

	// Watermarks, when not nil, holds the event-time watermark of the
	// whole stream after each row, computed by the engine's keyed exchange
	// (component.Watermarker); like KeyGroups, nothing else sets it.
	Watermarks []int64
}

// NoKeyGroup marks a row of Batch.KeyGroups whose key group is not known.
const NoKeyGroup = 0xFFFF

// New wraps a record batch.
func New(rec arrow.RecordBatch) *Batch { return &Batch{rec: rec} }

var valueSchema = arrow.NewSchema([]arrow.Field{{Name: ValueColumn, Type: arrow.BinaryTypes.Binary}}, nil)

// FromValues builds a batch with a single binary __value__ column.
func FromValues(values [][]byte) *Batch {
	bld := array.NewBinaryBuilder(Alloc, arrow.BinaryTypes.Binary)
	bld.Reserve(len(values))
	n := 0
	for _, v := range values {
		n += len(v)
	}
	bld.ReserveData(n)
	for _, v := range values {
		bld.Append(v)
	}
	arr := bld.NewArray()
	return New(array.NewRecordBatch(valueSchema, []arrow.Array{arr}, int64(len(values))))
}

// FromStrings is FromValues for strings.
func FromStrings(values ...string) *Batch {
	bs := make([][]byte, len(values))
	for i, v := range values {
		bs[i] = []byte(v)
	}
	return FromValues(bs)
}

// Record returns the Arrow record batch.
func (b *Batch) Record() arrow.RecordBatch { return b.rec }

// Schema returns the batch schema.
func (b *Batch) Schema() *arrow.Schema { return b.rec.Schema() }

// NumRows returns the number of rows.
func (b *Batch) NumRows() int {
	if b == nil || b.rec == nil {
		return 0
	}
	return int(b.rec.NumRows())
}

// Column returns the column with the given name, or nil.
func (b *Batch) Column(name string) arrow.Array {
	idx := b.rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return nil
	}
	return b.rec.Column(idx[0])
}

// Values returns the __value__ column as a binary array, or nil if the
// batch has none (or it is not binary/string).
func (b *Batch) Values() *BinaryColumn {
	return AsBinary(b.Column(ValueColumn))
}

// WithColumn returns a batch with the named column added or replaced. The
// acknowledgements are not copied: see TransferAcks.
func (b *Batch) WithColumn(name string, col arrow.Array) *Batch {
	schema := b.rec.Schema()
	fields := append([]arrow.Field(nil), schema.Fields()...)
	cols := append([]arrow.Array(nil), b.rec.Columns()...)
	f := arrow.Field{Name: name, Type: col.DataType(), Nullable: true}
	if idx := schema.FieldIndices(name); len(idx) > 0 {
		fields[idx[0]] = f
		cols[idx[0]] = col
	} else {
		fields = append(fields, f)
		cols = append(cols, col)
	}
	return &Batch{rec: array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, b.rec.NumRows()), Pos: b.Pos}
}

// Without returns a batch without the named columns.
func (b *Batch) Without(names ...string) *Batch {
	drop := make(map[string]bool, len(names))
	for _, n := range names {
		drop[n] = true
	}
	schema := b.rec.Schema()
	var fields []arrow.Field
	var cols []arrow.Array
	for i, f := range schema.Fields() {
		if drop[f.Name] {
			continue
		}
		fields = append(fields, f)
		cols = append(cols, b.rec.Column(i))
	}
	return &Batch{rec: array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, b.rec.NumRows()), Pos: b.Pos}
}

// Slice returns rows [i, j) as a new batch sharing memory with b.
func (b *Batch) Slice(i, j int) *Batch {
	out := &Batch{rec: b.rec.NewSlice(int64(i), int64(j)), Pos: b.Pos}
	if b.KeyGroups != nil {
		out.KeyGroups = b.KeyGroups[i:j]
	}
	if b.Watermarks != nil {
		out.Watermarks = b.Watermarks[i:j]
	}
	return out
}

// IsError reports whether the batch holds failed records (it has a
// __meta_error column). The engine routes such batches to error_output.
func (b *Batch) IsError() bool { return b.Column(MetaError) != nil }

// AddAck appends acknowledgements to the batch.
func (b *Batch) AddAck(fns ...AckFunc) { b.acks = append(b.acks, fns...) }

// TakeAcks removes and returns the batch's acknowledgements.
func (b *Batch) TakeAcks() []AckFunc {
	a := b.acks
	b.acks = nil
	return a
}

// HasAcks reports whether acknowledgements are attached.
func (b *Batch) HasAcks() bool { return len(b.acks) > 0 }

// TransferAcks moves the acknowledgements of src to dst.
func TransferAcks(dst, src *Batch) {
	if dst == src {
		return
	}
	dst.acks = append(dst.acks, src.TakeAcks()...)
}

// AckAll calls every acknowledgement in order and returns the first error.
func AckAll(ctx context.Context, acks []AckFunc, err error) error {
	var first error
	for _, a := range acks {
		if a == nil {
			continue
		}
		if e := a(ctx, err); e != nil && first == nil {
			first = e
		}
	}
	return first
}
