package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/config"
	"github.com/weir-stream/weir/internal/backoff"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/metrics"
)

// Options tune how streams run. The zero value is valid: see EnsureDefaults.
type Options struct {
	Logger  *slog.Logger
	Metrics *metrics.Registry
	// ShutdownTimeout bounds the drain after a graceful stop (default 30s).
	ShutdownTimeout time.Duration
	// QueueDepth is the capacity of every channel between stages (default 2).
	QueueDepth int
	// Retry is the backoff of output writes and input/output reconnects
	// (default backoff.Default: 100ms doubling to 10s, jittered).
	Retry backoff.Policy
}

// EnsureDefaults fills unset options with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	if o.QueueDepth <= 0 {
		o.QueueDepth = 2
	}
	if o.Retry.Initial <= 0 {
		o.Retry = backoff.Default
	}
}

// Status is a stream's health.
type Status int32

// Stream statuses.
const (
	StatusStarting Status = iota
	StatusRunning
	StatusRetrying // a component is failing and being retried
	StatusStopping
	StatusStopped
	StatusFailed
)

func (s Status) String() string {
	switch s {
	case StatusStarting:
		return "starting"
	case StatusRunning:
		return "running"
	case StatusRetrying:
		return "retrying"
	case StatusStopping:
		return "stopping"
	case StatusStopped:
		return "stopped"
	case StatusFailed:
		return "failed"
	}
	return "unknown"
}

// ErrShutdownTimeout is returned by Run when in-flight batches could not be
// drained within the shutdown timeout; they were not acknowledged, so a
// replayable input delivers them again.
var ErrShutdownTimeout = errors.New("shutdown timed out before in-flight batches drained")

// errStopped nacks a batch that was read but not processed because the
// stream stopped.
var errStopped = errors.New("stream stopped")

// Stream is one running stream of a config.
type Stream struct {
	Name string
	log  *slog.Logger
	opts Options

	input    component.Input
	inputM   *metrics.Component
	workers  [][]*proc
	out      *sink
	errOut   *sink // nil: failed records are logged and counted
	flushInt time.Duration

	status  atomic.Int32
	records atomic.Int64 // records read, for progress
	bytes   atomic.Int64 // payload bytes read (where known), for progress
}

// proc is one processor instance of one worker.
type proc struct {
	p         component.Processor
	name      string
	m         *metrics.Component
	flusher   component.Flusher
	holdsAcks bool
}

// NewStream builds a stream's components from its config. Errors are
// configuration errors: nothing has been started.
func NewStream(cfg config.Stream, opts Options) (*Stream, error) {
	opts.EnsureDefaults()
	name := cfg.Name
	if name == "" {
		name = fmt.Sprintf("stream-%d", cfg.Index)
	}
	s := &Stream{Name: name, opts: opts, log: opts.Logger.With("stream", name)}

	res := func(kind, typ string) component.Resources {
		label := kind + "." + typ
		return component.Resources{Logger: s.log.With("component", label), Stream: name, Label: label}
	}

	reg := component.Lookup(component.KindInput, cfg.Input.Type)
	if reg == nil {
		return nil, cfg.Input.Errorf("type", "unknown input type %q", cfg.Input.Type)
	}
	in, err := reg.NewInput(cfg.Input, res("input", cfg.Input.Type))
	if err != nil {
		return nil, err
	}
	s.input = in
	s.inputM = opts.Metrics.Component(name, "input."+cfg.Input.Type)

	procs := cfg.Pipeline.Processors
	if cfg.Buffer != nil {
		procs = append(procs[:len(procs):len(procs)], cfg.Buffer)
	}
	threads := cfg.Pipeline.ThreadNum
	if threads < 1 {
		threads = 1
	}
	for w := 0; w < threads; w++ {
		var chain []*proc
		for i, pc := range procs {
			reg := component.Lookup(component.KindProcessor, pc.Type)
			if reg == nil {
				return nil, pc.Errorf("type", "unknown processor type %q", pc.Type)
			}
			label := fmt.Sprintf("processor.%d.%s", i, pc.Type)
			p, err := reg.NewProcessor(pc, res(fmt.Sprintf("processor.%d", i), pc.Type))
			if err != nil {
				return nil, err
			}
			pr := &proc{p: p, name: label, m: opts.Metrics.Component(name, label)}
			if f, ok := p.(component.Flusher); ok {
				pr.flusher = f
				if d := f.FlushInterval(); d > 0 && (s.flushInt == 0 || d < s.flushInt) {
					s.flushInt = d
				}
			}
			_, pr.holdsAcks = p.(component.AckHolder)
			chain = append(chain, pr)
		}
		s.workers = append(s.workers, chain)
	}

	if s.out, err = newSink(cfg.Output, "output", s, res); err != nil {
		return nil, err
	}
	if cfg.ErrorOutput != nil {
		if s.errOut, err = newSink(cfg.ErrorOutput, "error_output", s, res); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Status returns the stream's current status.
func (s *Stream) Status() Status { return Status(s.status.Load()) }

func (s *Stream) setStatus(st Status) { s.status.Store(int32(st)) }

// Progress returns the records read so far and, for inputs that know it,
// bytes done and total.
func (s *Stream) Progress() (records, done, total int64) {
	records = s.records.Load()
	if p, ok := s.input.(component.Progresser); ok {
		done, total = p.Progress()
		return
	}
	return records, s.bytes.Load(), 0
}

// Run runs the stream until its input ends (bounded inputs) or ctx is
// cancelled, which stops the input and drains what is in flight within
// the shutdown timeout. It returns nil after a clean end or stop.
func (s *Stream) Run(ctx context.Context) error {
	s.setStatus(StatusStarting)
	// hard is cancelled only when the drain after a stop takes too long, or
	// when Run returns.
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()

	var wg sync.WaitGroup
	var timedOut atomic.Bool
	done := make(chan struct{})
	wg.Add(1)
	go func() { // shutdown watchdog
		defer wg.Done()
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		s.setStatus(StatusStopping)
		s.log.Info("stopping: draining in-flight batches", "timeout", s.opts.ShutdownTimeout)
		t := time.NewTimer(s.opts.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			timedOut.Store(true)
			hardCancel()
		}
	}()

	q := s.opts.QueueDepth
	readCh := make(chan *unit, 1)
	n := len(s.workers)
	workerIn := make([]chan *unit, n)
	workerOut := make([]chan *unit, n)
	for i := range workerIn {
		workerIn[i] = make(chan *unit, q)
		workerOut[i] = make(chan *unit, q)
	}
	sinkIn := make(chan *unit, q)

	var sinkErr error
	var stages sync.WaitGroup
	stages.Add(3 + n)
	go func() { defer stages.Done(); s.readLoop(ctx, hard, readCh) }()
	go func() { defer stages.Done(); s.sourceLoop(ctx, hard, readCh, workerIn) }()
	for i := 0; i < n; i++ {
		go func() { defer stages.Done(); s.workerLoop(hard, s.workers[i], workerIn[i], workerOut[i]) }()
	}
	go func() {
		defer stages.Done()
		if n == 1 {
			forward(hard, workerOut[0], sinkIn)
			return
		}
		s.collectLoop(hard, workerOut, sinkIn)
	}()
	sinkErr = s.sinkLoop(hard, sinkIn)

	// The sink has seen end of stream (or hard cancellation): make sure the
	// other stages end too, then close components.
	hardCancel()
	stages.Wait()
	close(done)
	wg.Wait()

	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var errs []error
	if err := s.input.Close(closeCtx); err != nil {
		errs = append(errs, fmt.Errorf("close input: %w", err))
	}
	for _, chain := range s.workers {
		for _, p := range chain {
			if err := p.p.Close(closeCtx); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", p.name, err))
			}
		}
	}
	if err := s.out.close(closeCtx); err != nil {
		errs = append(errs, err)
	}
	if s.errOut != nil {
		if err := s.errOut.close(closeCtx); err != nil {
			errs = append(errs, err)
		}
	}
	if timedOut.Load() {
		errs = append([]error{ErrShutdownTimeout}, errs...)
	} else if sinkErr != nil {
		errs = append([]error{sinkErr}, errs...)
	}
	if len(errs) > 0 {
		s.setStatus(StatusFailed)
		return errors.Join(errs...)
	}
	s.setStatus(StatusStopped)
	s.log.Info("stream finished", "records", s.records.Load())
	return nil
}

// forward copies units from in to out until end of stream.
func forward(ctx context.Context, in <-chan *unit, out chan<- *unit) {
	for {
		var u *unit
		select {
		case u = <-in:
		case <-ctx.Done():
			return
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

// nackUnit tells the input that the unit's batches were not written.
func nackUnit(u *unit) {
	ctx := context.Background()
	for _, b := range u.batches {
		_ = message.AckAll(ctx, b.TakeAcks(), errStopped)
	}
	_ = message.AckAll(ctx, u.acks, errStopped)
	u.acks = nil
}
