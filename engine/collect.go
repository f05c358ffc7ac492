package engine

import (
	"context"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/message"
)

// collectLoop reads worker outputs in the order the source dispatched to
// them. A control event is forwarded once every worker has delivered it
// (alignment); the flush output each worker attached to it is merged.
func (s *Stream) collectLoop(ctx context.Context, outs []chan *unit, sink chan<- *unit) {
	align := s.opts.Metrics.Checkpoint(s.Name).Alignment("workers")
	next := 0
	recv := func(i int) (*unit, bool) {
		select {
		case u := <-outs[i]:
			return u, true
		case <-ctx.Done():
			return nil, false
		}
	}
	for {
		u, ok := recv(next)
		if !ok {
			return
		}
		if u.isControl() {
			t0 := time.Now()
			for i := range outs {
				if i == next {
					continue
				}
				v, ok := recv(i)
				if !ok {
					return
				}
				if v.kind != u.kind {
					panic("engine: workers delivered control events out of order")
				}
				u.merge(v)
			}
			if u.kind == message.KindBarrier {
				align.Observe(time.Since(t0).Seconds())
			}
		} else {
			next = (next + 1) % len(outs)
		}
		select {
		case sink <- u:
		case <-ctx.Done():
			nackUnit(u)
			return
		}
		if u.kind == message.KindEndOfStream {
			return
		}
	}
}

// failBatch returns b with every row marked as failed with msg.
func failBatch(b *message.Batch, msg string) *message.Batch {
	bld := array.NewStringBuilder(message.Alloc)
	n := b.NumRows()
	bld.Reserve(n)
	for i := 0; i < n; i++ {
		bld.Append(msg)
	}
	return b.WithColumn(message.MetaError, bld.NewArray())
}
