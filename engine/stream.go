package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/config"
	"github.com/weir-stream/weir/internal/backoff"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/metrics"
	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
	"github.com/weir-stream/weir/txn"
)

// BackendFactory creates the keyed-state backend of one stateful processor
// instance: operator names the processor in the stream, cfg says which key
// groups it holds.
type BackendFactory func(stream, operator string, worker int, cfg kv.Config) (kv.Backend, error)

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
	// MaxKeyGroups partitions keyed state (default 128).
	MaxKeyGroups int
	// NewBackend creates keyed-state backends (default: memory).
	NewBackend BackendFactory
	// OnBarrier is called by the sink goroutine when checkpoint barrier b
	// has passed the whole stream. It owns b's snapshots. Without it they
	// are released.
	OnBarrier func(ctx context.Context, stream *Stream, b *Barrier)
	// DataDir, when set, is the root of the streams' local data directories
	// (component.Resources.DataDir is DataDir/<stream>). With it, an input
	// that cannot replay is wrapped in a transaction log there.
	DataDir string
	// TxnLog configures those transaction logs.
	TxnLog txn.Options
	// FinalCheckpoint, when set, returns the id of the checkpoint taken at
	// the end of the stream (after the input ended or the stream was
	// stopped), or 0 for none. Setting it means checkpointing is on.
	FinalCheckpoint func(stream *Stream) uint64
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
	if o.MaxKeyGroups <= 0 {
		o.MaxKeyGroups = kv.DefaultMaxKeyGroups
	}
	if o.NewBackend == nil {
		o.NewBackend = func(_, _ string, _ int, cfg kv.Config) (kv.Backend, error) { return memory.New(cfg) }
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
	stages   []*stage
	out      *sink
	errOut   *sink // nil: failed records are logged and counted
	flushInt time.Duration
	barriers chan uint64 // checkpoint triggers for the source
	inputErr error       // set by the reader when the input fails for good
	startPos []byte      // the position the input was rewound to (ResumeFrom)

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
	// stateful processors only:
	stateful bool
	backend  kv.Backend
	barrier  component.BarrierListener
	ticker   component.Ticker
	wmarker  component.Watermarker
	worker   int
	kgs      kv.KeyGroupRange
}

// NewStream builds a stream's components from its config. Errors are
// configuration errors: nothing has been started.
func NewStream(cfg config.Stream, opts Options) (*Stream, error) {
	opts.EnsureDefaults()
	name := cfg.Name
	if name == "" {
		name = fmt.Sprintf("stream-%d", cfg.Index)
	}
	s := &Stream{Name: name, opts: opts, log: opts.Logger.With("stream", name), barriers: make(chan uint64, 1)}
	ok := false
	defer func() {
		if !ok {
			s.closeBackends()
		}
	}()

	res := func(kind, typ string) component.Resources {
		label := kind + "." + typ
		return component.Resources{Logger: s.log.With("component", label), Stream: name, Label: label}
	}

	reg := component.Lookup(component.KindInput, cfg.Input.Type)
	if reg == nil {
		return nil, cfg.Input.Errorf("type", "unknown input type %q", cfg.Input.Type)
	}
	inRes := res("input", cfg.Input.Type)
	if opts.DataDir != "" {
		inRes.DataDir = filepath.Join(opts.DataDir, name)
	}
	in, err := reg.NewInput(cfg.Input, inRes)
	if err != nil {
		return nil, err
	}
	if _, replayable := in.(component.Replayable); !replayable && opts.DataDir != "" {
		// Checkpoints need positions: log what this input reads first.
		in = txn.NewLoggedInput(in, filepath.Join(inRes.DataDir, "transaction-log"), opts.TxnLog, inRes.Logger)
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
	if threads > opts.MaxKeyGroups {
		threads = opts.MaxKeyGroups
	}
	// Split the chain into stages: a stateless prefix run by ordered
	// workers, then one keyed stage per stateful processor (with the
	// stateless processors that follow it).
	var segments [][2]int
	begin := 0
	for i, pc := range procs {
		reg := component.Lookup(component.KindProcessor, pc.Type)
		if reg == nil {
			return nil, pc.Errorf("type", "unknown processor type %q", pc.Type)
		}
		if reg.Spec.Stateful && i > begin {
			segments = append(segments, [2]int{begin, i})
			begin = i
		}
	}
	if begin < len(procs) {
		segments = append(segments, [2]int{begin, len(procs)})
	}
	for _, seg := range segments {
		first := component.Lookup(component.KindProcessor, procs[seg[0]].Type)
		st := &stage{keyed: first.Spec.Stateful, maxKG: opts.MaxKeyGroups}
		for w := 0; w < threads; w++ {
			var kgs kv.KeyGroupRange
			if st.keyed {
				kgs = kv.RangeForWorker(opts.MaxKeyGroups, threads, w)
			}
			chain, err := s.buildChain(procs, seg, w, kgs)
			if err != nil {
				return nil, err
			}
			st.workers = append(st.workers, chain)
		}
		if st.keyed && threads > 1 {
			// The exchange needs its own instance to compute keys.
			chain, err := s.buildChain(procs, [2]int{seg[0], seg[0] + 1}, -1, kv.FullRange(opts.MaxKeyGroups))
			if err != nil {
				return nil, err
			}
			keys, isKeyed := chain[0].p.(component.Keyed)
			if !isKeyed {
				return nil, fmt.Errorf("processor %s is stateful but does not implement component.Keyed", chain[0].name)
			}
			st.keys = keys
			st.keysProc = chain[0]
			st.owner = make([]int, opts.MaxKeyGroups)
			for w := 0; w < threads; w++ {
				r := kv.RangeForWorker(opts.MaxKeyGroups, threads, w)
				for kg := r.Start; kg < r.End; kg++ {
					st.owner[kg] = w
				}
			}
		}
		s.stages = append(s.stages, st)
	}

	if s.out, err = newSink(cfg.Output, "output", s, res); err != nil {
		return nil, err
	}
	if cfg.ErrorOutput != nil {
		if s.errOut, err = newSink(cfg.ErrorOutput, "error_output", s, res); err != nil {
			return nil, err
		}
		s.out.failFast = true
	}
	if len(s.Committers()) > 0 && opts.FinalCheckpoint == nil {
		return nil, cfg.Output.Errorf("exactly_once", "an exactly-once output commits at checkpoints: set state.enabled: true")
	}
	ok = true
	return s, nil
}

// buildChain builds worker w's instances of procs[seg[0]:seg[1]]; kgs is
// the key-group range of a keyed stage's worker. w < 0 builds the exchange's
// key extractor (its state backend holds nothing).
func (s *Stream) buildChain(procs []*component.Config, seg [2]int, w int, kgs kv.KeyGroupRange) ([]*proc, error) {
	var chain []*proc
	for i := seg[0]; i < seg[1]; i++ {
		pc := procs[i]
		reg := component.Lookup(component.KindProcessor, pc.Type)
		label := fmt.Sprintf("processor.%d.%s", i, pc.Type)
		res := component.Resources{
			Logger: s.log.With("component", label),
			Stream: s.Name,
			Label:  label,
		}
		pr := &proc{name: label, m: s.opts.Metrics.Component(s.Name, label), worker: w}
		if reg.Spec.Stateful {
			kcfg := kv.Config{MaxKeyGroups: s.opts.MaxKeyGroups, KeyGroups: kgs}
			var b kv.Backend
			var err error
			if w < 0 {
				b, err = memory.New(kcfg)
			} else {
				b, err = s.opts.NewBackend(s.Name, label, w, kcfg)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: state backend: %w", label, err)
			}
			pr.stateful, pr.backend, pr.kgs = true, b, kgs
			res.State, res.KeyGroups, res.MaxKeyGroups = b, kgs, s.opts.MaxKeyGroups
		}
		p, err := reg.NewProcessor(pc, res)
		if err != nil {
			if pr.backend != nil {
				_ = pr.backend.Close()
			}
			return nil, err
		}
		pr.p = p
		if f, ok := p.(component.Flusher); ok {
			pr.flusher = f
			if d := f.FlushInterval(); d > 0 && !pr.stateful {
				s.noteTick(d)
			}
		}
		if pr.stateful {
			if b, ok := p.(component.BarrierListener); ok {
				pr.barrier = b
			}
			if t, ok := p.(component.Ticker); ok && t.TickInterval() > 0 {
				pr.ticker = t
				s.noteTick(t.TickInterval())
			}
			if wmr, ok := p.(component.Watermarker); ok {
				pr.wmarker = wmr
			}
		}
		_, pr.holdsAcks = p.(component.AckHolder)
		chain = append(chain, pr)
	}
	return chain, nil
}

func (s *Stream) noteTick(d time.Duration) {
	if s.flushInt == 0 || d < s.flushInt {
		s.flushInt = d
	}
}

// procs calls fn for every processor instance of the stream.
func (s *Stream) procs(fn func(*proc)) {
	for _, st := range s.stages {
		for _, chain := range st.workers {
			for _, p := range chain {
				fn(p)
			}
		}
		if st.keysProc != nil {
			fn(st.keysProc)
		}
	}
}

func (s *Stream) closeBackends() {
	s.procs(func(p *proc) {
		if p.backend != nil {
			if err := p.backend.Close(); err != nil {
				s.log.Warn("closing state backend failed", "processor", p.name, "error", err)
			}
		}
	})
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

// Input returns the stream's input (for checkpoint positions).
func (s *Stream) Input() component.Input { return s.input }

// Output returns the stream's output (for two-phase commit).
func (s *Stream) Output() component.Output { return s.out.out }

// StatefulInstances returns every stateful processor instance: its
// operator name, worker index, key groups and backend (for restores).
func (s *Stream) StatefulInstances() []OperatorSnapshot {
	var out []OperatorSnapshot
	s.procs(func(p *proc) {
		if p.stateful && p.worker >= 0 {
			out = append(out, OperatorSnapshot{Operator: p.name, Worker: p.worker, KeyGroups: p.kgs, Backend: p.backend})
		}
	})
	return out
}

// ResumeFrom records that the input was rewound to pos (a restored
// checkpoint's position), so that a barrier taken before the first batch
// carries that position, not none. Call it before Run.
func (s *Stream) ResumeFrom(pos []byte) { s.startPos = pos }

// TriggerCheckpoint asks the source to inject the barrier of checkpoint id.
// It returns false if a trigger is already waiting or the stream is not
// running.
func (s *Stream) TriggerCheckpoint(id uint64) bool {
	select {
	case s.barriers <- id:
		return true
	default:
		return false
	}
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
	var stages sync.WaitGroup
	stages.Add(2)
	srcOut := make(chan *unit, q)
	go func() { defer stages.Done(); s.readLoop(ctx, readCh) }()
	go func() { defer stages.Done(); s.sourceLoop(ctx, hard, readCh, srcOut) }()
	in := srcOut
	for _, st := range s.stages {
		out := make(chan *unit, q)
		st.start(hard, s, in, out, &stages)
		in = out
	}
	sinkErr := s.sinkLoop(hard, in)

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
	s.procs(func(p *proc) {
		if err := p.p.Close(closeCtx); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", p.name, err))
		}
	})
	s.closeBackends()
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
	if s.inputErr != nil {
		errs = append([]error{s.inputErr}, errs...)
	}
	if len(errs) > 0 {
		s.setStatus(StatusFailed)
		return errors.Join(errs...)
	}
	s.setStatus(StatusStopped)
	s.log.Info("stream finished", "records", s.records.Load())
	return nil
}

// nackUnit tells the input that the unit's batches were not written, and
// releases the snapshots it carries.
func nackUnit(u *unit) {
	ctx := context.Background()
	for _, b := range u.batches {
		_ = message.AckAll(ctx, b.TakeAcks(), errStopped)
	}
	_ = message.AckAll(ctx, u.acks, errStopped)
	u.acks = nil
	for _, sn := range u.snaps {
		sn.Snapshot.Release()
	}
	u.snaps = nil
}
