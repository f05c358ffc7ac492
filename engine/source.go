package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

// readLoop connects the input and reads batches into out until the input
// ends (out is closed) or ctx is cancelled (a graceful stop). A permanent
// connect error is stored in s.inputErr and ends the stream.
func (s *Stream) readLoop(ctx context.Context, out chan<- *unit) {
	defer close(out)
	if !s.connectInput(ctx) {
		return
	}
	attempt := 0
	for {
		b, ack, err := s.input.Read(ctx)
		if err != nil {
			switch {
			case errors.Is(err, component.ErrEndOfInput):
				s.log.Info("input exhausted")
				return
			case ctx.Err() != nil:
				return
			case errors.Is(err, component.ErrNotConnected):
				s.inputM.Connected.Set(0)
				s.log.Warn("input lost its connection; reconnecting", "error", err)
				if !s.connectInput(ctx) {
					return
				}
				continue
			}
			s.inputM.Errors.Inc()
			s.inputM.Retries.Inc()
			s.setStatus(StatusRetrying)
			s.log.Warn("input read failed; retrying", "error", err, "attempt", attempt+1)
			if s.opts.Retry.Sleep(ctx, attempt) != nil {
				return
			}
			attempt++
			continue
		}
		if attempt > 0 {
			attempt = 0
			s.setStatus(StatusRunning)
		}
		if b == nil {
			continue
		}
		n := b.NumRows()
		if ack != nil {
			b.AddAck(ack)
		}
		s.records.Add(int64(n))
		s.inputM.RecordsOut.Add(float64(n))
		if v := b.Values(); v != nil {
			nb := v.TotalBytes()
			s.bytes.Add(int64(nb))
			s.inputM.BytesOut.Add(float64(nb))
		}
		u := &unit{kind: message.KindData, batches: []*message.Batch{b}, start: time.Now().UnixNano()}
		select {
		case out <- u:
		case <-ctx.Done():
			nackUnit(u)
			return
		}
	}
}

// connectInput connects the input, retrying with backoff; false means the
// stream was stopped first.
func (s *Stream) connectInput(ctx context.Context) bool {
	for attempt := 0; ; attempt++ {
		err := s.input.Connect(ctx)
		if err == nil {
			s.inputM.Connected.Set(1)
			if s.Status() == StatusStarting || s.Status() == StatusRetrying {
				s.setStatus(StatusRunning)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if component.IsPermanent(err) {
			s.inputM.Errors.Inc()
			s.inputErr = fmt.Errorf("input: %w", err)
			s.log.Error("input cannot connect and retrying will not help; stopping the stream", "error", err)
			return false
		}
		s.inputM.Connected.Set(0)
		s.inputM.Retries.Inc()
		s.setStatus(StatusRetrying)
		s.log.Warn("input connect failed; retrying", "error", err, "attempt", attempt+1)
		if s.opts.Retry.Sleep(ctx, attempt) != nil {
			return false
		}
	}
}

// sourceLoop turns what the reader read into the stream of units and adds
// control events: checkpoint barriers (with the position of the last batch
// sent before them), flush ticks, and the end of stream.
func (s *Stream) sourceLoop(ctx, hard context.Context, in <-chan *unit, out chan<- *unit) {
	send := func(u *unit) bool {
		select {
		case out <- u:
			return true
		case <-hard.Done():
			nackUnit(u)
			return false
		}
	}
	pos := s.startPos
	var tick <-chan time.Time
	if s.flushInt > 0 {
		t := time.NewTicker(s.flushInt)
		defer t.Stop()
		tick = t.C
	}
	stopped := ctx.Done()
	barriers := s.barriers
	stopping := false
	for {
		select {
		case u, ok := <-in:
			if !ok {
				// The input ended (drain everything) or the stream was
				// stopped (stateful processors keep their state in the
				// final checkpoint when there is one).
				eos := message.EndOfStream()
				eos.Drain = !stopping || s.opts.FinalCheckpoint == nil
				// A failed input takes no final checkpoint: the stream
				// fails, and a restart resumes from the last good one.
				if s.opts.FinalCheckpoint != nil && s.inputErr == nil {
					eos.CheckpointID = s.opts.FinalCheckpoint(s)
				}
				send(&unit{kind: message.KindEndOfStream, ctrl: eos, pos: pos})
				return
			}
			if p := u.batches[0].Pos; p != nil {
				pos = p
			}
			if !send(u) {
				return
			}
		case id := <-barriers:
			if !send(&unit{kind: message.KindBarrier, ctrl: message.Barrier(id), pos: pos}) {
				return
			}
		case <-tick:
			if !send(&unit{kind: kindTick}) {
				return
			}
		case <-stopped:
			// Graceful stop: the reader stops too (same ctx) and nacks
			// what it holds; keep draining its channel until it closes.
			// No new checkpoint starts while draining.
			stopped, tick, barriers = nil, nil, nil
			stopping = true
		case <-hard.Done():
			return
		}
	}
}
