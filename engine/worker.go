package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/weir-stream/weir/message"
)

// workerLoop runs one worker's processor chain over its units. When resume
// is set (keyed stages), the worker waits after every control event until
// the merge has it from every worker: barrier alignment.
func (s *Stream) workerLoop(ctx context.Context, chain []*proc, in <-chan *unit, out chan<- *unit, resume <-chan struct{}) {
	for {
		var u *unit
		select {
		case u = <-in:
		case <-ctx.Done():
			return
		}
		switch u.kind {
		case message.KindData:
			u.batches = s.runChain(ctx, chain, u.batches, &u.acks)
			if u.hasWM && chain[0].wmarker != nil {
				wm := u.wm
				u.batches = append(u.batches, s.emitChain(ctx, chain, &u.acks, func(p *proc) ([]*message.Batch, error) {
					if p == chain[0] {
						return p.wmarker.OnWatermark(ctx, wm)
					}
					return nil, nil
				})...)
			}
		case kindTick:
			now := time.Now()
			u.batches = s.emitChain(ctx, chain, &u.acks, func(p *proc) ([]*message.Batch, error) {
				switch {
				case p.ticker != nil:
					return p.ticker.OnTick(ctx, now)
				case !p.stateful && p.flusher != nil && p.flusher.FlushInterval() > 0:
					return p.flusher.Flush(ctx)
				}
				return nil, nil
			})
		case message.KindBarrier:
			// Nothing stateless may stay buffered across a checkpoint;
			// stateful processors may emit (on_checkpoint), then their
			// state is frozen.
			id := u.ctrl.CheckpointID
			u.batches = s.emitChain(ctx, chain, &u.acks, func(p *proc) ([]*message.Batch, error) {
				switch {
				case p.barrier != nil:
					return p.barrier.OnBarrier(ctx, id)
				case !p.stateful && p.flusher != nil:
					return p.flusher.Flush(ctx)
				}
				return nil, nil
			})
			s.snapshotChain(chain, u)
		case message.KindEndOfStream:
			drain := u.ctrl.Drain
			u.batches = s.emitChain(ctx, chain, &u.acks, func(p *proc) ([]*message.Batch, error) {
				if p.flusher != nil && (drain || !p.stateful) {
					return p.flusher.Flush(ctx)
				}
				return nil, nil
			})
			if id := u.ctrl.CheckpointID; id != 0 {
				if !drain {
					// Stopping with state kept: like any barrier, stateful
					// processors may emit before their state is frozen.
					u.batches = append(u.batches, s.emitChain(ctx, chain, &u.acks, func(p *proc) ([]*message.Batch, error) {
						if p.barrier != nil {
							return p.barrier.OnBarrier(ctx, id)
						}
						return nil, nil
					})...)
				}
				s.snapshotChain(chain, u)
			}
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
		if resume != nil && u.isControl() {
			select {
			case <-resume:
			case <-ctx.Done():
				return
			}
		}
	}
}

// snapshotChain freezes the state of every stateful processor of the chain
// and attaches the snapshots to the barrier unit. This is the synchronous
// part of a checkpoint; files are written from the snapshots elsewhere.
func (s *Stream) snapshotChain(chain []*proc, u *unit) {
	for _, p := range chain {
		if !p.stateful {
			continue
		}
		t0 := time.Now()
		snap, err := p.backend.Snapshot()
		s.opts.Metrics.Checkpoint(s.Name).Stall(p.name).Observe(time.Since(t0).Seconds())
		if err != nil {
			u.err = fmt.Errorf("%s (worker %d): snapshot: %w", p.name, p.worker, err)
			continue
		}
		u.snaps = append(u.snaps, OperatorSnapshot{Operator: p.name, Worker: p.worker, KeyGroups: p.kgs, Snapshot: snap, Backend: p.backend})
	}
}

// runChain runs batches through chain. Error batches skip the rest of the
// chain. Acknowledgements follow the data: a processor's input acks move
// to its last output, or to *loose when it emitted nothing.
func (s *Stream) runChain(ctx context.Context, chain []*proc, batches []*message.Batch, loose *[]message.AckFunc) []*message.Batch {
	for _, p := range chain {
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
			countOut(p, outs)
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

func countOut(p *proc, outs []*message.Batch) {
	for _, o := range outs {
		if o.IsError() {
			p.m.Errors.Add(float64(o.NumRows()))
		} else {
			p.m.RecordsOut.Add(float64(o.NumRows()))
		}
	}
}

// emitChain asks every processor of the chain, in order, for what it emits
// on a control event (fn); what processor i emits goes through processors
// i+1.. before they are asked in turn.
func (s *Stream) emitChain(ctx context.Context, chain []*proc, loose *[]message.AckFunc, fn func(*proc) ([]*message.Batch, error)) []*message.Batch {
	var carried []*message.Batch
	for i, p := range chain {
		if len(carried) > 0 {
			carried = s.runChain(ctx, chain[i:i+1], carried, loose)
		}
		outs, err := fn(p)
		if err != nil {
			p.m.Errors.Inc()
			s.log.Error("processor failed on a control event", "processor", p.name, "error", err)
			continue
		}
		countOut(p, outs)
		carried = append(carried, outs...)
	}
	return carried
}
