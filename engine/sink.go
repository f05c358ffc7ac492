package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/metrics"
)

// sink owns one output: connection, retries and metrics.
type sink struct {
	s         *Stream
	out       component.Output
	label     string
	m         *metrics.Component
	connected bool
	// failFast makes write return permanent errors instead of retrying
	// them (set on the output when the stream has an error_output).
	failFast bool
}

func newSink(cfg *component.Config, role string, s *Stream, res func(kind, typ string) component.Resources) (*sink, error) {
	reg := component.Lookup(component.KindOutput, cfg.Type)
	if reg == nil {
		return nil, cfg.Errorf("type", "unknown output type %q", cfg.Type)
	}
	out, err := reg.NewOutput(cfg, res(role, cfg.Type))
	if err != nil {
		return nil, err
	}
	label := role + "." + cfg.Type
	return &sink{s: s, out: out, label: label, m: s.opts.Metrics.Component(s.Name, label)}, nil
}

// write writes b, retrying with backoff until it succeeds or ctx is done.
func (k *sink) write(ctx context.Context, b *message.Batch) error {
	for attempt := 0; ; attempt++ {
		if !k.connected {
			if err := k.out.Connect(ctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				k.m.Connected.Set(0)
				k.m.Retries.Inc()
				k.s.setStatus(StatusRetrying)
				k.s.log.Warn("output connect failed; retrying", "output", k.label, "error", err, "attempt", attempt+1)
				if k.s.opts.Retry.Sleep(ctx, attempt) != nil {
					return ctx.Err()
				}
				continue
			}
			k.connected = true
			k.m.Connected.Set(1)
		}
		t0 := time.Now()
		err := k.out.Write(ctx, b)
		k.m.ProcessTime.Observe(time.Since(t0).Seconds())
		if err == nil {
			if attempt > 0 && k.s.Status() == StatusRetrying {
				k.s.setStatus(StatusRunning)
			}
			n := b.NumRows()
			k.m.RecordsOut.Add(float64(n))
			if v := b.Values(); v != nil {
				k.m.BytesOut.Add(float64(v.TotalBytes()))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, component.ErrFatal) {
			k.m.Errors.Inc()
			k.s.log.Error("output failed for good; stopping the stream (a restart recovers from the last checkpoint)", "output", k.label, "error", err)
			return err
		}
		if k.failFast && component.IsPermanent(err) {
			k.m.Errors.Inc()
			return err
		}
		if errors.Is(err, component.ErrNotConnected) {
			k.connected = false
			k.m.Connected.Set(0)
		}
		k.m.Errors.Inc()
		k.m.Retries.Inc()
		k.s.setStatus(StatusRetrying)
		k.s.log.Warn("output write failed; retrying", "output", k.label, "error", err, "attempt", attempt+1, "records", b.NumRows())
		if k.s.opts.Retry.Sleep(ctx, attempt) != nil {
			return ctx.Err()
		}
	}
}

func (k *sink) close(ctx context.Context) error {
	if err := k.out.Close(ctx); err != nil {
		return fmt.Errorf("close %s: %w", k.label, err)
	}
	return nil
}

// sinkLoop writes every unit's batches in order, then acknowledges them.
// It returns at end of stream, or with an error when ctx was cancelled
// before everything was written.
func (s *Stream) sinkLoop(ctx context.Context, in <-chan *unit) error {
	for {
		var u *unit
		select {
		case u = <-in:
		case <-ctx.Done():
			return ctx.Err()
		}
		for i, b := range u.batches {
			if err := s.deliver(ctx, b); err != nil {
				for _, rest := range u.batches[i:] {
					_ = message.AckAll(ctx, rest.TakeAcks(), err)
				}
				_ = message.AckAll(ctx, u.acks, err)
				return err
			}
			if u.start > 0 && !b.IsError() {
				s.out.m.BatchLatency.Observe(float64(time.Now().UnixNano()-u.start) / 1e9)
			}
			if err := message.AckAll(ctx, b.TakeAcks(), nil); err != nil {
				s.log.Warn("input acknowledgement failed", "error", err)
			}
		}
		if err := message.AckAll(ctx, u.acks, nil); err != nil {
			s.log.Warn("input acknowledgement failed", "error", err)
		}
		if u.kind == message.KindBarrier || (u.kind == message.KindEndOfStream && u.ctrl.CheckpointID != 0) {
			b := &Barrier{ID: u.ctrl.CheckpointID, Position: u.pos, Snapshots: u.snaps, Err: u.err}
			s.preCommit(ctx, b)
			if s.opts.OnBarrier != nil {
				s.opts.OnBarrier(ctx, s, b)
			} else {
				b.Release()
			}
		}
		if u.kind == message.KindEndOfStream {
			return nil
		}
	}
}

// deliver writes a data batch to the output, or a failed batch to the
// error output (or the log, without one).
func (s *Stream) deliver(ctx context.Context, b *message.Batch) error {
	n := b.NumRows()
	if n == 0 {
		return nil
	}
	if !b.IsError() {
		err := s.out.write(ctx, b)
		if err == nil || ctx.Err() != nil || s.errOut == nil || errors.Is(err, component.ErrFatal) {
			return err
		}
		// A permanent write error: the records go to error_output.
		s.log.Error("output rejected records permanently; sending them to error_output", "records", n, "error", err)
		eb := failBatch(b, s.out.label+": "+err.Error())
		return s.errOut.write(ctx, eb)
	}
	if s.errOut != nil {
		return s.errOut.write(ctx, b)
	}
	s.out.m.Errors.Add(float64(n))
	errs := message.AsBinary(b.Column(message.MetaError))
	first := ""
	if errs != nil && errs.Len() > 0 {
		first = errs.String(0)
	}
	s.log.Warn("records failed and there is no error_output; dropping them", "records", n, "error", first)
	return nil
}

// Committers returns the stream's two-phase-commit outputs by label
// ("output", "error_output"): outputs that implement component.Committer
// and, when they implement component.ExactlyOnce, have it enabled.
func (s *Stream) Committers() map[string]component.Committer {
	out := map[string]component.Committer{}
	for label, k := range map[string]*sink{"output": s.out, "error_output": s.errOut} {
		if k == nil {
			continue
		}
		c, ok := k.out.(component.Committer)
		if !ok {
			continue
		}
		if eo, ok := k.out.(component.ExactlyOnce); ok && !eo.ExactlyOnce() {
			continue
		}
		out[label] = c
	}
	return out
}

// preCommit pre-commits the two-phase-commit outputs at barrier b: what
// they wrote before it becomes durable, still invisible, until the
// checkpoint completes.
func (s *Stream) preCommit(ctx context.Context, b *Barrier) {
	for label, c := range s.Committers() {
		h, err := c.PreCommit(ctx, b.ID)
		if err != nil {
			b.Err = errors.Join(b.Err, fmt.Errorf("%s: pre-commit: %w", label, err))
			continue
		}
		if b.Sinks == nil {
			b.Sinks = map[string][]byte{}
		}
		b.Sinks[label] = h
	}
}
