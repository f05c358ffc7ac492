package processors

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state"
	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
)

// Helpers shared by the processors of this package.

func bitutilBytes(n int) int { return (n + 7) / 8 }

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
	eb, err := message.Take(b, f.rows)
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

// stateBackend returns the keyed-state backend of a stateful processor: the
// engine's (res.State), or, for one built outside the engine (tests,
// tools), a private memory backend that the processor owns and closes.
func stateBackend(res component.Resources) (backend, owned kv.Backend, err error) {
	if res.State != nil {
		return res.State, nil, nil
	}
	b, err := memory.New(kv.Config{})
	if err != nil {
		return nil, nil, err
	}
	return b, b, nil
}

// setCurrentKey makes key, the key of row of b, the current key of ctx,
// using the key group the engine's keyed exchange computed for the row
// (Batch.KeyGroups) instead of hashing the key again when there is one.
func setCurrentKey(ctx *state.KeyedContext, b *message.Batch, row int, key []byte) error {
	if b.KeyGroups != nil {
		if kg := b.KeyGroups[row]; kg != message.NoKeyGroup {
			return ctx.SetCurrentKeyInGroup(key, int(kg))
		}
	}
	return ctx.SetCurrentKey(key)
}
