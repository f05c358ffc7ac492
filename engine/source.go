package engine

import (
	"context"
	"errors"
	"time"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

// readLoop connects the input and reads batches into out until the input
// ends (out is closed) or ctx is cancelled (a graceful stop).
func (s *Stream) readLoop(ctx, hard context.Context, out chan<- *unit) {
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
		s.inputM.Connected.Set(0)
		s.inputM.Retries.Inc()
		s.setStatus(StatusRetrying)
		s.log.Warn("input connect failed; retrying", "error", err, "attempt", attempt+1)
		if s.opts.Retry.Sleep(ctx, attempt) != nil {
			return false
		}
	}
}

// sourceLoop turns what the reader read into the stream of units, adds
// control events, and dispatches them to the workers: data round robin,
// control events to every worker.
func (s *Stream) sourceLoop(ctx, hard context.Context, in <-chan *unit, workers []chan *unit) {
	next := 0
	send := func(u *unit) bool {
		if !u.isControl() {
			select {
			case workers[next] <- u:
			case <-hard.Done():
				nackUnit(u)
				return false
			}
			next = (next + 1) % len(workers)
			return true
		}
		for _, w := range workers {
			select {
			case w <- &unit{kind: u.kind, ctrl: u.ctrl}:
			case <-hard.Done():
				return false
			}
		}
		return true
	}

	var tick <-chan time.Time
	if s.flushInt > 0 {
		t := time.NewTicker(s.flushInt)
		defer t.Stop()
		tick = t.C
	}
	stopped := ctx.Done()
	for {
		select {
		case u, ok := <-in:
			if !ok {
				send(&unit{kind: message.KindEndOfStream, ctrl: message.EndOfStream()})
				return
			}
			if !send(u) {
				return
			}
		case <-tick:
			if !send(&unit{kind: kindTick}) {
				return
			}
		case <-stopped:
			// Graceful stop: the reader stops too (same ctx) and nacks
			// what it holds; drain its channel so it is not left blocked.
			stopped = nil
			tick = nil
		case <-hard.Done():
			return
		}
	}
}
