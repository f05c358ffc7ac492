package processors

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state"
	"github.com/weir-stream/weir/state/kv"
)

const (
	aggregateGroupBy         = "group_by"
	aggregateKeyColumn       = "key_column"
	aggregateEmit            = "emit"
	aggregateStateTTL        = "state_ttl"
	aggregateTTLUpdateOnRead = "state_ttl_update_on_read"
)

// Emit modes of the aggregate processor.
const (
	emitOnUpdate     = "on_update"
	emitOnCheckpoint = "on_checkpoint"
	emitOnEnd        = "on_end"
)

// aggEmitBatchRows bounds the rows of a batch emitted at a checkpoint or at
// the end of the stream.
const aggEmitBatchRows = 8192

func aggregateSpec() component.Spec {
	return component.Spec{
		Name:     "aggregate",
		Stateful: true,
		Summary: "Aggregates rows per key in keyed state (count, sum, min, max, avg, first, last) and emits " +
			"rows of the key and its aggregates: on every update, at checkpoints (changed keys), or at the end.",
		Fields: []component.Field{
			{Name: aggregateGroupBy, Type: component.TypeExpr, Required: true,
				Description: "Key: a column name (read directly) or an expression, stringified. A null key fails its row."},
			{Name: aggregateKeyColumn, Type: component.TypeString, Default: "key",
				Description: "Name of the output column holding the key (a string)."},
			aggregatesField(),
			{Name: aggregateEmit, Type: component.TypeString, Default: emitOnUpdate,
				Options: []string{emitOnUpdate, emitOnCheckpoint, emitOnEnd},
				Description: "on_update: one row per input row with its key's new values, in input order; " +
					"on_checkpoint: one row per key changed since the last checkpoint (and at the end); " +
					"on_end: one row per key when the input ends."},
			{Name: aggregateStateTTL, Type: component.TypeDuration, Default: time.Duration(0),
				Description: "A key's state expires after this long without updates (processing time); 0 keeps it forever."},
			{Name: aggregateTTLUpdateOnRead, Type: component.TypeBool, Default: false, Advanced: true,
				Description: "Reads refresh the TTL too, not only writes."},
		},
		Example: "pipeline:\n  processors:\n    - type: split\n      output_field: word\n" +
			"    - type: aggregate\n      group_by: word\n      key_column: word\n" +
			"      aggregates:\n        - {function: count, as: count}\n",
	}
}

func init() {
	component.RegisterProcessor(aggregateSpec(), newAggregate)
}

var _ interface {
	component.Keyed
	component.BarrierListener
	component.Flusher
} = (*aggregate)(nil)

// aggregate keeps one set of accumulators per key in keyed state and
// emits the key's current aggregates.
//
// State: one value state per processor, named after the aggregates (so a
// changed list starts fresh): an int64 for a single count (the fast path:
// no allocation per row), an aggAcc for another single aggregate, an
// aggRow otherwise. Keys are the group_by bytes (groupKey), the same in
// Keys and Process.
//
// The set of keys changed since the last barrier (emit: on_checkpoint) is
// in memory only: everything in it is emitted before the checkpoint's
// snapshot, so it is empty in every checkpoint and needs no restore.
type aggregate struct {
	key    *groupKey
	keyCol string
	specs  []aggSpec
	emit   string

	ctx   *state.KeyedContext
	owned kv.Backend // created here when the engine gave none (tests)
	count *state.ValueState[int64]
	one   *state.ValueState[aggAcc]
	multi *state.ValueState[aggRow]

	reader  *aggReader
	out     *aggOutput
	changed map[string]struct{}

	// Reused per batch.
	fails   rowFailures
	good    []int32
	keyData []byte
	keyOffs []int32
	oneBuf  [1]aggAcc
}

func newAggregate(conf *component.Config, res component.Resources) (component.Processor, error) {
	p := &aggregate{keyCol: conf.String(aggregateKeyColumn), emit: conf.String(aggregateEmit)}
	var err error
	if p.key, err = newGroupKey(conf.String(aggregateGroupBy)); err != nil {
		return nil, conf.Errorf(aggregateGroupBy, "%v", err)
	}
	if p.keyCol == "" {
		return nil, conf.Errorf(aggregateKeyColumn, "must not be empty")
	}
	if p.specs, err = parseAggregates(conf); err != nil {
		return nil, err
	}
	for _, s := range p.specs {
		if s.As == p.keyCol {
			return nil, conf.Errorf(aggregatesKey, "output column %q is also the key_column; set a different `as`", s.As)
		}
	}
	switch p.emit {
	case emitOnUpdate, emitOnCheckpoint, emitOnEnd:
	default:
		return nil, conf.Errorf(aggregateEmit, "unknown emit mode %q; expected on_update, on_checkpoint or on_end", p.emit)
	}
	ttl := conf.Duration(aggregateStateTTL)
	if ttl < 0 {
		return nil, conf.Errorf(aggregateStateTTL, "must not be negative")
	}

	backend, owned, err := stateBackend(res)
	if err != nil {
		return nil, err
	}
	p.owned = owned
	if p.ctx, err = state.NewKeyedContext(backend); err != nil {
		p.closeOwned()
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	var opts []state.StateOption
	if ttl > 0 {
		opts = append(opts, state.WithTTL(state.TTLConfig{TTL: ttl, UpdateOnRead: conf.Bool(aggregateTTLUpdateOnRead)}))
	}
	name := stateName("aggregate", aggSignature(p.specs))
	switch {
	case len(p.specs) == 1 && p.specs[0].Func == aggCount:
		p.count, err = state.NewValueState[int64](p.ctx, name, opts...)
	case len(p.specs) == 1:
		p.one, err = state.NewValueState[aggAcc](p.ctx, name, opts...)
	default:
		p.multi, err = state.NewValueState[aggRow](p.ctx, name, opts...)
	}
	if err != nil {
		p.closeOwned()
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	p.reader = newAggReader(p.specs)
	p.out = newAggOutput(p.specs)
	if p.emit == emitOnCheckpoint {
		p.changed = make(map[string]struct{})
	}
	return p, nil
}

func (p *aggregate) closeOwned() {
	if p.owned != nil {
		_ = p.owned.Close()
		p.owned = nil
	}
}

func (p *aggregate) Close(context.Context) error {
	p.closeOwned()
	return nil
}

// Keys implements component.Keyed.
func (p *aggregate) Keys(b *message.Batch, fn func(row int, key []byte)) error {
	return keysOf(p.key, b, fn)
}

func (p *aggregate) Process(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
	if err := p.key.bind(b); err != nil {
		return nil, fmt.Errorf("group_by: %w", err)
	}
	if err := p.reader.bind(b); err != nil {
		return nil, err
	}
	p.fails.reset()
	p.out.reset() // in case the last batch failed half way
	p.good = p.good[:0]
	p.keyData = p.keyData[:0]
	p.keyOffs = append(p.keyOffs[:0], 0)
	keyArr, _ := p.key.column()
	onUpdate := p.emit == emitOnUpdate
	n := b.NumRows()
	for i := 0; i < n; i++ {
		key, err := p.key.key(b, i)
		if err != nil {
			p.fails.add(i, "aggregate: group_by: "+err.Error())
			continue
		}
		if err := setCurrentKey(p.ctx, b, i, key); err != nil {
			p.fails.add(i, "aggregate: "+err.Error())
			continue
		}
		ok, err := p.update(i)
		if err != nil {
			return nil, fmt.Errorf("aggregate: %w", err)
		}
		if !ok {
			continue
		}
		if p.changed != nil {
			if _, seen := p.changed[string(key)]; !seen {
				p.changed[string(key)] = struct{}{}
			}
		}
		if onUpdate {
			p.good = append(p.good, int32(i))
			if keyArr == nil {
				p.keyData = append(p.keyData, key...)
				p.keyOffs = append(p.keyOffs, int32(len(p.keyData)))
			}
		}
	}
	if err := p.ctx.Flush(); err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	bad, err := p.fails.errorBatch(b)
	if err != nil {
		return nil, err
	}
	var good *message.Batch
	if onUpdate && len(p.good) > 0 {
		var keys arrow.Array
		if keyArr != nil {
			if keys, err = keyStringColumn(keyArr, p.good); err != nil {
				return nil, err
			}
		} else {
			keys = message.NewBinaryArray(arrow.BinaryTypes.String, slices.Clone(p.keyOffs), slices.Clone(p.keyData), nil, 0)
		}
		good = p.batch(keys)
		good.Pos = b.Pos
	}
	return results(good, bad), nil
}

// update folds row i into the current key's state and, for on_update,
// appends the key's new values to p.out. ok is false when the row's value
// could not be read (it was added to p.fails); err is a state failure.
func (p *aggregate) update(i int) (ok bool, err error) {
	onUpdate := p.emit == emitOnUpdate
	switch {
	case p.count != nil:
		c, _, err := p.count.Value()
		if err != nil {
			return false, err
		}
		if p.reader.counts(0, i) {
			c++
		}
		if err := p.count.Update(c); err != nil {
			return false, err
		}
		if onUpdate {
			p.out.appendCount(c)
		}
	case p.one != nil:
		acc, _, err := p.one.Value()
		if err != nil {
			return false, err
		}
		if err := p.reader.addOne(&acc, i); err != nil {
			p.fails.add(i, "aggregate: "+err.Error())
			return false, nil
		}
		if err := p.one.Update(acc); err != nil {
			return false, err
		}
		if onUpdate {
			p.oneBuf[0] = acc
			p.out.appendRow(p.oneBuf[:])
		}
	default:
		cur, _, err := p.multi.Value()
		if err != nil {
			return false, err
		}
		next := make(aggRow, len(p.specs))
		copy(next, cur)
		if err := p.reader.add(next, i); err != nil {
			p.fails.add(i, "aggregate: "+err.Error())
			return false, nil
		}
		if err := p.multi.Update(next); err != nil {
			return false, err
		}
		if onUpdate {
			p.out.appendRow(next)
		}
	}
	return true, nil
}

// batch builds an output batch of the key column and p.out's rows.
func (p *aggregate) batch(keys arrow.Array) *message.Batch {
	fields, cols := p.out.build()
	fields = append([]arrow.Field{{Name: p.keyCol, Type: keys.DataType(), Nullable: true}}, fields...)
	cols = append([]arrow.Array{keys}, cols...)
	return message.New(array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, int64(keys.Len())))
}

// keyStringColumn returns the rows idx of a binary or string column as a
// string column, without copying when idx is all of it.
func keyStringColumn(col arrow.Array, idx []int32) (arrow.Array, error) {
	if len(idx) != col.Len() { // else idx is every row, in order
		c, err := message.TakeColumn(col, idx)
		if err != nil {
			return nil, err
		}
		col = c
	}
	switch col.DataType().ID() {
	case arrow.STRING:
		return col, nil
	case arrow.BINARY:
		// Same layout: view the buffers as a string column.
		d := col.Data()
		ad := array.NewData(arrow.BinaryTypes.String, d.Len(), d.Buffers(), nil, d.NullN(), d.Offset())
		defer ad.Release()
		return array.MakeFromData(ad), nil
	}
	bc := message.AsBinary(col)
	offs := make([]int32, bc.Len()+1)
	var data []byte
	for i := 0; i < bc.Len(); i++ {
		data = append(data, bc.Bytes(i)...)
		offs[i+1] = int32(len(data))
	}
	return message.NewBinaryArray(arrow.BinaryTypes.String, offs, data, nil, 0), nil
}

// OnBarrier implements component.BarrierListener: with emit on_checkpoint
// it emits the keys changed since the last barrier.
func (p *aggregate) OnBarrier(context.Context, uint64) ([]*message.Batch, error) {
	if p.emit != emitOnCheckpoint {
		return nil, nil
	}
	return p.emitChanged()
}

// Flush implements component.Flusher; the engine calls it when the input
// has ended: on_checkpoint emits the keys changed since the last barrier,
// on_end every key.
func (p *aggregate) Flush(context.Context) ([]*message.Batch, error) {
	switch p.emit {
	case emitOnCheckpoint:
		return p.emitChanged()
	case emitOnEnd:
		return p.emitAll()
	}
	return nil, nil
}

// FlushInterval implements component.Flusher: no timed flushes.
func (p *aggregate) FlushInterval() time.Duration { return 0 }

// emitChanged emits the current values of the changed keys, sorted, and
// forgets them. A key whose state expired meanwhile is skipped.
func (p *aggregate) emitChanged() ([]*message.Batch, error) {
	if len(p.changed) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, len(p.changed))
	for k := range p.changed {
		keys = append(keys, k)
	}
	clear(p.changed)
	slices.Sort(keys)
	var em aggEmitter
	for _, k := range keys {
		if err := p.ctx.SetCurrentKey([]byte(k)); err != nil {
			return nil, fmt.Errorf("aggregate: %w", err)
		}
		ok, err := p.appendCurrent()
		if err != nil {
			return nil, fmt.Errorf("aggregate: %w", err)
		}
		if ok {
			em.add(p, k)
		}
	}
	return em.finish(p), nil
}

// appendCurrent appends the current key's values to p.out; false if it has
// none.
func (p *aggregate) appendCurrent() (bool, error) {
	switch {
	case p.count != nil:
		c, ok, err := p.count.Value()
		if ok {
			p.out.appendCount(c)
		}
		return ok, err
	case p.one != nil:
		acc, ok, err := p.one.Value()
		if ok {
			p.oneBuf[0] = acc
			p.out.appendRow(p.oneBuf[:])
		}
		return ok, err
	}
	row, ok, err := p.multi.Value()
	if ok {
		p.out.appendRow(row)
	}
	return ok, err
}

// emitAll emits every key's values, sorted by key.
func (p *aggregate) emitAll() ([]*message.Batch, error) {
	switch {
	case p.count != nil:
		return emitSorted(p, p.count, func(v int64) { p.out.appendCount(v) })
	case p.one != nil:
		return emitSorted(p, p.one, func(v aggAcc) {
			p.oneBuf[0] = v
			p.out.appendRow(p.oneBuf[:])
		})
	default:
		return emitSorted(p, p.multi, func(v aggRow) { p.out.appendRow(v) })
	}
}

// emitSorted emits every key of st with its value, sorted by key. The
// pairs are gathered in one slice sized from the backend's key count (a
// word count ends with 100 k keys: growing a slice of wider entries cost
// more than the counting).
func emitSorted[V any](p *aggregate, st *state.ValueState[V], appendOut func(V)) ([]*message.Batch, error) {
	type pair struct {
		key string
		v   V
	}
	all := make([]pair, 0, min(p.ctx.Backend().Stats().Keys, 1<<24))
	// Range hands out a copy of each key: keep it without copying again.
	if err := st.Range(func(k []byte, v V) bool { all = append(all, pair{bytesToString(k), v}); return true }); err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	slices.SortFunc(all, func(a, b pair) int { return strings.Compare(a.key, b.key) })
	var em aggEmitter
	for _, e := range all {
		appendOut(e.v)
		em.add(p, e.key)
	}
	return em.finish(p), nil
}

// aggEmitter gathers the keys of rows appended to p.out into batches of at
// most aggEmitBatchRows rows.
type aggEmitter struct {
	data []byte
	offs []int32
	out  []*message.Batch
}

func (e *aggEmitter) add(p *aggregate, key string) {
	if e.offs == nil {
		e.offs = []int32{0}
	}
	e.data = append(e.data, key...)
	e.offs = append(e.offs, int32(len(e.data)))
	if len(e.offs)-1 >= aggEmitBatchRows {
		e.cut(p)
	}
}

func (e *aggEmitter) cut(p *aggregate) {
	if len(e.offs) <= 1 {
		return
	}
	keys := message.NewBinaryArray(arrow.BinaryTypes.String, e.offs, e.data, nil, 0)
	e.out = append(e.out, p.batch(keys))
	e.data, e.offs = nil, nil
}

func (e *aggEmitter) finish(p *aggregate) []*message.Batch {
	e.cut(p)
	return e.out
}
