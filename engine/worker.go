package engine

import (
	"context"
	"time"

	"github.com/weir-stream/weir/message"
)

// workerLoop runs one worker's processor chain over its units.
func (s *Stream) workerLoop(ctx context.Context, chain []*proc, in <-chan *unit, out chan<- *unit) {
	for {
		var u *unit
		select {
		case u = <-in:
		case <-ctx.Done():
			return
		}
		switch u.kind {
		case message.KindData:
			u.batches = s.runChain(ctx, chain, 0, u.batches, &u.acks)
		case kindTick:
			u.batches = s.flushChain(ctx, chain, true, &u.acks)
		case message.KindBarrier, message.KindEndOfStream:
			// Nothing may stay buffered across a checkpoint or past the end.
			u.batches = s.flushChain(ctx, chain, false, &u.acks)
		}
		select {
		case out <- u:
		case <-ctx.Done():
			nackUnit(u)
			return
		}
		if u.kind == message.KindEndOfStream {
			return
		}
	}
}

// runChain runs batches through chain[from:]. Error batches skip the rest
// of the chain. Acknowledgements follow the data: a processor's input acks
// move to its last output, or to *loose when it emitted nothing.
func (s *Stream) runChain(ctx context.Context, chain []*proc, from int, batches []*message.Batch, loose *[]message.AckFunc) []*message.Batch {
	for _, p := range chain[from:] {
		var next []*message.Batch
		for _, b := range batches {
			if b.IsError() {
				next = append(next, b)
				continue
			}
			n := b.NumRows()
			p.m.RecordsIn.Add(float64(n))
			t0 := time.Now()
			outs, err := p.p.Process(ctx, b)
			p.m.ProcessTime.Observe(time.Since(t0).Seconds())
			if err != nil {
				p.m.Errors.Add(float64(n))
				eb := failBatch(b, p.name+": "+err.Error())
				message.TransferAcks(eb, b)
				next = append(next, eb)
				continue
			}
			for _, o := range outs {
				if o.IsError() {
					p.m.Errors.Add(float64(o.NumRows()))
				} else {
					p.m.RecordsOut.Add(float64(o.NumRows()))
				}
			}
			if !p.holdsAcks && b.HasAcks() {
				if len(outs) > 0 {
					message.TransferAcks(outs[len(outs)-1], b)
				} else {
					*loose = append(*loose, b.TakeAcks()...)
				}
			}
			next = append(next, outs...)
		}
		batches = next
	}
	return batches
}

// flushChain flushes the chain's flushers in order; what processor i
// flushes goes through processors i+1.. (and is flushed by them in turn).
// timedOnly restricts it to flushers with a flush interval (ticks).
func (s *Stream) flushChain(ctx context.Context, chain []*proc, timedOnly bool, loose *[]message.AckFunc) []*message.Batch {
	var carried []*message.Batch
	for i, p := range chain {
		if len(carried) > 0 {
			carried = s.runChain(ctx, chain[i:i+1], 0, carried, loose)
		}
		if p.flusher == nil || (timedOnly && p.flusher.FlushInterval() <= 0) {
			continue
		}
		outs, err := p.flusher.Flush(ctx)
		if err != nil {
			p.m.Errors.Inc()
			s.log.Error("processor flush failed", "processor", p.name, "error", err)
			continue
		}
		for _, o := range outs {
			p.m.RecordsOut.Add(float64(o.NumRows()))
		}
		carried = append(carried, outs...)
	}
	return carried
}
