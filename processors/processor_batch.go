package processors

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

const (
	batchCount     = "count"
	batchTimeout   = "timeout"
	batchTimeoutMs = "timeout_ms"
)

func batchSpec() component.Spec {
	return component.Spec{
		Name: "batch",
		Summary: "Groups rows into batches of count rows; what is left is emitted every timeout " +
			"and at the end of the stream.",
		Fields: []component.Field{
			{Name: batchCount, Type: component.TypeInt, Default: int64(8192),
				Description: "Rows per emitted batch."},
			{Name: batchTimeout, Type: component.TypeDuration, Default: time.Second,
				Description: "Emit the buffered rows at least this often (the engine's flush tick); 0 only at end of stream."},
			{Name: batchTimeoutMs, Type: component.TypeInt,
				Description: "Same as timeout, in milliseconds (ArkFlow's name); overrides timeout when set.", Advanced: true},
		},
		Example: "pipeline:\n  processors:\n    - type: batch\n      count: 1000\n      timeout: 500ms\n",
	}
}

func init() {
	component.RegisterProcessor(batchSpec(), newBatch)
}

// batcher buffers input batches and emits batches of exactly count rows
// (concatenated with array.Concatenate), keeping the remainder; Flush emits
// the remainder. A batch whose schema differs from the buffered ones first
// flushes the buffer as it is.
//
// Acknowledgements: it holds the acks of every buffered input batch and
// attaches them to the emitted batch that carries that input's last row,
// so an input is acknowledged only once all its rows are written.
type batcher struct {
	count   int
	timeout time.Duration

	buf  []pending // buffered input, oldest first; buf[0] may be a slice of an input
	rows int       // rows in buf
}

// pending is buffered rows with the acks of the input they end.
type pending struct {
	b    *message.Batch
	acks []message.AckFunc
}

func newBatch(conf *component.Config, _ component.Resources) (component.Processor, error) {
	p := &batcher{count: conf.Int(batchCount), timeout: conf.Duration(batchTimeout)}
	if p.count <= 0 {
		return nil, conf.Errorf(batchCount, "must be positive, got %d", p.count)
	}
	if conf.Has(batchTimeoutMs) {
		ms := conf.Int(batchTimeoutMs)
		if ms < 0 {
			return nil, conf.Errorf(batchTimeoutMs, "must not be negative, got %d", ms)
		}
		p.timeout = time.Duration(ms) * time.Millisecond
	}
	if p.timeout < 0 {
		return nil, conf.Errorf(batchTimeout, "must not be negative, got %s", p.timeout)
	}
	return p, nil
}

// HoldsAcks tells the engine that the batcher moves acks itself.
func (p *batcher) HoldsAcks() {}

// FlushInterval is the timeout.
func (p *batcher) FlushInterval() time.Duration { return p.timeout }

func (p *batcher) Close(context.Context) error { return nil }

func (p *batcher) Process(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
	var out []*message.Batch
	if len(p.buf) > 0 && !p.buf[0].b.Schema().Equal(b.Schema()) {
		flushed, err := p.emitAll()
		if err != nil {
			return nil, err
		}
		out = append(out, flushed)
	}
	p.buf = append(p.buf, pending{b: b, acks: b.TakeAcks()})
	p.rows += b.NumRows()
	for p.rows >= p.count {
		chunk, err := p.emitCount()
		if err != nil {
			return nil, err
		}
		out = append(out, chunk)
	}
	return out, nil
}

// Flush emits the buffered rows, if any.
func (p *batcher) Flush(context.Context) ([]*message.Batch, error) {
	if len(p.buf) == 0 {
		return nil, nil
	}
	b, err := p.emitAll()
	if err != nil {
		return nil, err
	}
	return []*message.Batch{b}, nil
}

// emitAll concatenates the whole buffer into one batch.
func (p *batcher) emitAll() (*message.Batch, error) {
	out, err := concatBatches(p.buf)
	if err != nil {
		return nil, err
	}
	for i := range p.buf {
		out.AddAck(p.buf[i].acks...)
	}
	clear(p.buf)
	p.buf = p.buf[:0]
	p.rows = 0
	return out, nil
}

// emitCount emits the first count buffered rows; p.rows >= p.count.
func (p *batcher) emitCount() (*message.Batch, error) {
	// Find the buffered batch holding row count-1.
	taken, last := 0, 0
	for ; ; last++ {
		n := p.buf[last].b.NumRows()
		if taken+n >= p.count {
			break
		}
		taken += n
	}
	head := append([]pending(nil), p.buf[:last]...)
	split := p.buf[last]
	need := p.count - taken
	var rest *message.Batch
	if need == split.b.NumRows() {
		head = append(head, split)
		last++
	} else {
		head = append(head, pending{b: split.b.Slice(0, need)})
		rest = split.b.Slice(need, split.b.NumRows())
		rest.Pos = split.b.Pos
	}
	out, err := concatBatches(head)
	if err != nil {
		return nil, err
	}
	for i := range head {
		out.AddAck(head[i].acks...)
	}
	remaining := p.buf[last:]
	if rest != nil {
		// The input that was cut keeps its acks with its remaining rows.
		remaining[0] = pending{b: rest, acks: split.acks}
	}
	n := copy(p.buf, remaining)
	clear(p.buf[n:])
	p.buf = p.buf[:n]
	p.rows -= p.count
	return out, nil
}

// concatBatches concatenates batches of one schema column by column. The
// result's Pos is the last batch's.
func concatBatches(parts []pending) (*message.Batch, error) {
	if len(parts) == 1 {
		b := parts[0].b
		out := message.New(b.Record())
		out.Pos = b.Pos
		return out, nil
	}
	first := parts[0].b.Record()
	ncols := int(first.NumCols())
	cols := make([]arrow.Array, ncols)
	arrs := make([]arrow.Array, len(parts))
	rows := 0
	for _, pt := range parts {
		rows += pt.b.NumRows()
	}
	for c := 0; c < ncols; c++ {
		for i, pt := range parts {
			arrs[i] = pt.b.Record().Column(c)
		}
		col, err := array.Concatenate(arrs, message.Alloc)
		if err != nil {
			return nil, fmt.Errorf("batch: concatenate column %s: %w", first.ColumnName(c), err)
		}
		cols[c] = col
	}
	out := message.New(array.NewRecordBatch(first.Schema(), cols, int64(rows)))
	out.Pos = parts[len(parts)-1].b.Pos
	return out, nil
}
