package checkpoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/weir-stream/weir/checkpoint/storage"
	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/engine"
	"github.com/weir-stream/weir/internal/backoff"
	"github.com/weir-stream/weir/metrics"
	"github.com/weir-stream/weir/state/kv"
)

// Config configures a Coordinator. Zero fields get the defaults named.
type Config struct {
	Pipeline string // required
	Stream   string // required
	// Interval between periodic checkpoints (default 60s; 0 with Manual set:
	// no periodic checkpoints).
	Interval time.Duration
	// Timeout aborts a checkpoint that has not completed (default 10m).
	Timeout time.Duration
	// MinPause is the least time between the end of one checkpoint and the
	// start of the next (default 0).
	MinPause time.Duration
	// TolerableFailures is how many consecutive checkpoints may fail before
	// Run returns an error that fails the pipeline (default 3).
	TolerableFailures int
	// Retained is how many completed checkpoints are kept (default 3).
	Retained int
	// FullEvery starts a key group's file chain again with a full file
	// after this many files (default 10).
	FullEvery int
	// MaxDeltaRatio starts a chain again when its deltas' bytes exceed this
	// fraction of its full file (default 0.5).
	MaxDeltaRatio float64
	// MaxKeyGroups of the state (default 128).
	MaxKeyGroups int
	// Backend names the working-state backend (memory | pebble).
	Backend string
	// Uploads is how many files are written in parallel (default 8).
	Uploads int
	// Manual disables periodic checkpoints.
	Manual bool
}

func (c *Config) ensureDefaults() error {
	if c.Pipeline == "" || c.Stream == "" {
		return errors.New("checkpoint: pipeline and stream names are required")
	}
	if c.Interval <= 0 {
		c.Interval = time.Minute
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.TolerableFailures < 0 {
		c.TolerableFailures = 0
	}
	if c.Retained < 1 {
		c.Retained = 3
	}
	if c.FullEvery < 1 {
		c.FullEvery = 10
	}
	if c.MaxDeltaRatio <= 0 {
		c.MaxDeltaRatio = 0.5
	}
	if c.MaxKeyGroups <= 0 {
		c.MaxKeyGroups = kv.DefaultMaxKeyGroups
	}
	if c.Uploads <= 0 {
		c.Uploads = 8
	}
	return nil
}

// Hooks are called as checkpoints complete (two-phase commit, source
// offset commits). They may be nil.
type Hooks struct {
	// Prepare is called when a barrier has reached the sink and returns what
	// the manifest stores to finish the sinks' commit after a crash.
	Prepare func(ctx context.Context, id uint64) (map[string][]byte, error)
	// Complete is called after the manifest of checkpoint m is stored.
	Complete func(ctx context.Context, m *Manifest)
	// Abort is called when checkpoint id failed.
	Abort func(ctx context.Context, id uint64, err error)
}

// Coordinator checkpoints one stream.
type Coordinator struct {
	cfg    Config
	store  storage.Storage
	root   string // "<pipeline>/<stream>/"
	stream *engine.Stream
	log    *slog.Logger
	m      *metrics.Checkpoint
	hooks  Hooks

	mu sync.Mutex
	// cleared is signalled (under mu) whenever pending becomes nil.
	cleared sync.Cond
	// guarded by mu:
	nextID        uint64
	pending       *inflight
	lastEnd       time.Time
	failures      int
	lastCompleted uint64
	retained      []*Manifest // oldest first
	// chains is the file chain of every (operator, key group) as of the
	// last completed checkpoint.
	chains  map[string]map[int][]FileRef
	waiters []chan result
	fatal   error
	kick    chan struct{}
	work    chan *engine.Barrier
}

type inflight struct {
	id      uint64
	started time.Time
	cancel  context.CancelFunc
	ctx     context.Context
	waiters []chan result
	final   bool
	// completed is set once the manifest is stored; the checkpoint stays
	// pending (so no other starts) until its commits and cleanup are done.
	completed bool
}

type result struct {
	id  uint64
	err error
}

// New creates a coordinator for stream, storing under store.
func New(cfg Config, store storage.Storage, stream *engine.Stream, m *metrics.Registry, log *slog.Logger, hooks Hooks) (*Coordinator, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = metrics.New()
	}
	c := &Coordinator{
		cfg:    cfg,
		store:  store,
		root:   cfg.Pipeline + "/" + cfg.Stream + "/",
		stream: stream,
		log:    log.With("stream", cfg.Stream),
		m:      m.Checkpoint(cfg.Stream),
		hooks:  hooks,
		nextID: 1,
		chains: map[string]map[int][]FileRef{},
		kick:   make(chan struct{}, 1),
		work:   make(chan *engine.Barrier, 1),
	}
	c.cleared.L = &c.mu
	return c, nil
}

// Root returns the stream's prefix in the storage.
func (c *Coordinator) Root() string { return c.root }

// LastCompleted returns the id of the last completed checkpoint (0: none).
func (c *Coordinator) LastCompleted() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastCompleted
}

// OnBarrier is the engine's Options.OnBarrier for this stream: the barrier
// of a checkpoint has passed every operator and the sink.
func (c *Coordinator) OnBarrier(ctx context.Context, _ *engine.Stream, b *engine.Barrier) {
	c.mu.Lock()
	p := c.pending
	c.mu.Unlock()
	if p == nil || p.id != b.ID {
		c.log.Warn("ignoring the barrier of a checkpoint that is no longer in flight", "checkpoint", b.ID)
		b.Release()
		return
	}
	c.log.Debug("checkpoint barrier reached the output", "checkpoint", b.ID, "after", time.Since(p.started).Round(time.Millisecond))
	if p.final {
		// The stream ends after this barrier: complete it here, so Run
		// does not return before the final checkpoint is stored.
		c.complete(p, b)
		return
	}
	c.work <- b // capacity 1 and at most one checkpoint in flight: never blocks long
}

// FinalCheckpoint is the engine's Options.FinalCheckpoint: it starts the
// checkpoint taken at the end of the stream and returns its id.
func (c *Coordinator) FinalCheckpoint(*engine.Stream) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A completed checkpoint still committing and cleaning up must finish
	// first: its cleanup must not race with the final checkpoint's files.
	for c.pending != nil && c.pending.completed {
		c.cleared.Wait()
	}
	if p := c.pending; p != nil && !p.completed {
		// A barrier that has not reached the sink will not any more: the
		// final checkpoint supersedes it.
		c.abortLocked(p, errors.New("superseded by the final checkpoint"), false)
	}
	p := c.startLocked(context.Background())
	p.final = true
	return p.id
}

// CreateCheckpoint triggers a checkpoint now and waits until it completes
// or fails. It returns the checkpoint's id.
func (c *Coordinator) CreateCheckpoint(ctx context.Context) (uint64, error) {
	ch := make(chan result, 1)
	c.mu.Lock()
	if c.fatal != nil {
		c.mu.Unlock()
		return 0, c.fatal
	}
	c.waiters = append(c.waiters, ch)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	select {
	case r := <-ch:
		return r.id, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Run triggers periodic checkpoints, writes them as their barriers arrive,
// and aborts those that time out, until ctx is done. It returns an error
// when more than TolerableFailures consecutive checkpoints failed.
func (c *Coordinator) Run(ctx context.Context) error {
	tick := time.NewTicker(min(c.cfg.Interval, 100*time.Millisecond))
	defer tick.Stop()
	var uploads sync.WaitGroup
	defer uploads.Wait()
	next := time.Now().Add(c.cfg.Interval)
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-c.work:
			c.mu.Lock()
			p := c.pending
			c.mu.Unlock()
			if p == nil || p.id != b.ID {
				b.Release()
				continue
			}
			uploads.Add(1)
			go func() { defer uploads.Done(); c.complete(p, b) }()
		case <-c.kick:
		case <-tick.C:
		}
		c.mu.Lock()
		if c.fatal != nil {
			err := c.fatal
			c.mu.Unlock()
			return err
		}
		now := time.Now()
		if p := c.pending; p != nil && !p.completed && now.Sub(p.started) > c.cfg.Timeout {
			c.abortLocked(p, fmt.Errorf("checkpoint %d timed out after %v (raise checkpoint_timeout_ms)", p.id, c.cfg.Timeout), true)
			c.m.Failed("timeout")
		}
		due := !c.cfg.Manual && !now.Before(next)
		if c.pending == nil && (due || len(c.waiters) > 0) && now.Sub(c.lastEnd) >= c.cfg.MinPause {
			p := c.startLocked(ctx)
			if c.stream.TriggerCheckpoint(p.id) {
				next = now.Add(c.cfg.Interval)
			} else {
				// The source is busy or stopped: try again on the next tick.
				c.pending = nil
				c.cleared.Broadcast()
				c.nextID--
				p.cancel()
				c.waiters = append(p.waiters, c.waiters...)
			}
		}
		c.mu.Unlock()
	}
}

// startLocked makes a new checkpoint the pending one.
func (c *Coordinator) startLocked(ctx context.Context) *inflight {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
	p := &inflight{id: c.nextID, started: time.Now(), ctx: cctx, cancel: cancel, waiters: c.waiters}
	c.waiters = nil
	c.nextID++
	c.pending = p
	return p
}

// abortLocked fails p; counted failures count towards TolerableFailures.
func (c *Coordinator) abortLocked(p *inflight, err error, counted bool) {
	if c.pending == p {
		c.pending = nil
		c.cleared.Broadcast()
	}
	p.cancel()
	c.lastEnd = time.Now()
	if counted {
		c.failures++
		c.log.Warn("checkpoint failed", "checkpoint", p.id, "error", err, "consecutive_failures", c.failures)
	}
	for _, w := range p.waiters {
		w <- result{id: p.id, err: err}
	}
	p.waiters = nil
	if c.failures > c.cfg.TolerableFailures && c.fatal == nil {
		c.fatal = fmt.Errorf("checkpoint: %d consecutive checkpoints failed (tolerable_failed_checkpoints is %d); last: %w", c.failures, c.cfg.TolerableFailures, err)
	}
	// Two-phase-commit outputs keep the failed checkpoint's epoch
	// pre-committed: the next checkpoint that completes commits it too
	// (the source has moved on; discarding it would lose records).
	if c.hooks.Abort != nil {
		c.hooks.Abort(context.Background(), p.id, err)
	}
}

// commitSinks commits the two-phase-commit outputs of completed
// checkpoint m, retrying until ctx ends: the checkpoint is complete, so
// its records must become visible.
func (c *Coordinator) commitSinks(ctx context.Context, m *Manifest) error {
	if c.stream == nil {
		return nil
	}
	for label, out := range c.stream.Committers() {
		for attempt := 0; ; attempt++ {
			err := out.Commit(ctx, m.ID, m.Sinks[label])
			if err == nil {
				break
			}
			if errors.Is(err, component.ErrFatal) {
				return fmt.Errorf("checkpoint %d: commit %s: %w", m.ID, label, err)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("checkpoint %d: commit %s: %w", m.ID, label, err)
			}
			c.log.Warn("commit failed; retrying", "output", label, "checkpoint", m.ID, "error", err, "attempt", attempt+1)
			if backoff.Default.Sleep(ctx, attempt) != nil {
				return fmt.Errorf("checkpoint %d: commit %s: %w", m.ID, label, err)
			}
		}
	}
	return nil
}

// complete writes checkpoint p from its barrier b.
func (c *Coordinator) complete(p *inflight, b *engine.Barrier) {
	defer b.Release()
	m, err := c.write(p, b)
	c.mu.Lock()
	if c.pending != p {
		// Timed out (and already reported) while writing.
		c.mu.Unlock()
		return
	}
	if err != nil {
		reason := "task"
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			reason = "timeout"
			err = fmt.Errorf("checkpoint %d timed out after %v (raise checkpoint_timeout_ms): %w", p.id, c.cfg.Timeout, err)
		case storage.IsTransient(err):
			reason = "storage"
		}
		c.m.Failed(reason)
		c.abortLocked(p, err, true)
		if errors.Is(err, component.ErrFatal) && c.fatal == nil {
			c.fatal = err
		}
		c.mu.Unlock()
		return
	}
	p.completed = true
	c.failures = 0
	c.lastCompleted = m.ID
	for _, s := range b.Snapshots {
		s.Backend.ConfirmSnapshot(s.Snapshot.Seq())
	}
	c.chains = chainsOf(m)
	c.retained = append(c.retained, m)
	var drop []*Manifest
	for len(c.retained) > c.cfg.Retained {
		drop = append(drop, c.retained[0])
		c.retained = c.retained[1:]
	}
	retained := append([]*Manifest(nil), c.retained...)
	c.mu.Unlock()

	c.m.Duration.Observe(time.Since(p.started).Seconds())
	c.m.FullSize.Set(float64(m.FullBytes))
	c.m.IncrSize.Set(float64(m.IncrementalBytes))
	c.m.LastCompleted.Set(float64(m.ID))
	c.log.Info("checkpoint completed", "checkpoint", m.ID, "duration", time.Since(p.started).Round(time.Millisecond),
		"bytes_written", m.IncrementalBytes, "bytes_total", m.FullBytes)
	// Commit what the checkpoint made final before anyone is told.
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	p.cancel()
	if err := c.commitSinks(ctx, m); err != nil {
		c.mu.Lock()
		if c.fatal == nil {
			c.fatal = err
		}
		c.mu.Unlock()
		c.log.Error("committing the outputs of a completed checkpoint failed", "checkpoint", m.ID, "error", err)
	}
	c.notifyInput(ctx, m, retained)
	if c.hooks.Complete != nil {
		c.hooks.Complete(ctx, m)
	}
	for _, w := range p.waiters {
		w <- result{id: m.ID}
	}
	for _, old := range drop {
		if err := c.store.Delete(ctx, c.root+ManifestName(old.ID)); err != nil {
			c.log.Warn("deleting an old checkpoint manifest failed", "checkpoint", old.ID, "error", err)
		}
	}
	if err := c.collectGarbage(ctx, retained); err != nil {
		c.log.Warn("deleting unreferenced checkpoint files failed", "error", err)
	}
	c.mu.Lock()
	if c.pending == p {
		c.pending = nil
		c.cleared.Broadcast()
	}
	c.lastEnd = time.Now()
	c.mu.Unlock()
}

// write uploads the state files of b and then its manifest.
func (c *Coordinator) write(p *inflight, b *engine.Barrier) (*Manifest, error) {
	ctx := p.ctx
	if b.Err != nil {
		return nil, fmt.Errorf("checkpoint %d: %w", b.ID, b.Err)
	}
	c.mu.Lock()
	prev := c.chains
	known := map[string]bool{}
	for _, m := range c.retained {
		for _, f := range m.Files() {
			known[f.Name] = true
		}
	}
	c.mu.Unlock()

	m := &Manifest{
		FormatVersion: FormatVersion, Pipeline: c.cfg.Pipeline, Stream: c.cfg.Stream, ID: b.ID,
		CreatedAt: time.Now().UTC(), MaxKeyGroups: c.cfg.MaxKeyGroups, Backend: c.cfg.Backend, Position: b.Position,
	}
	type job struct {
		op   string
		kg   int
		snap kv.Snapshot
		full bool
	}
	ops := map[string]map[int][]FileRef{}
	var jobs []job
	for _, s := range b.Snapshots {
		chainsOp := prev[s.Operator]
		if ops[s.Operator] == nil {
			ops[s.Operator] = map[int][]FileRef{}
		}
		for kg := s.KeyGroups.Start; kg < s.KeyGroups.End; kg++ {
			chain := chainsOp[kg]
			if !s.Snapshot.Changed(kg) {
				if len(chain) > 0 {
					ops[s.Operator][kg] = chain
				}
				continue
			}
			jobs = append(jobs, job{op: s.Operator, kg: kg, snap: s.Snapshot, full: needsFull(chain, c.cfg)})
		}
	}

	var mu sync.Mutex
	var firstErr error
	// Key groups are encoded and uploaded in parallel (kv.Snapshot reads
	// of different key groups may run concurrently).
	sem := make(chan struct{}, c.cfg.Uploads)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ref, wrote, err := c.writeFile(ctx, j.snap, j.kg, j.full, known)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("checkpoint %d: %s key group %d: %w", b.ID, j.op, j.kg, err)
				}
				return
			}
			if wrote {
				m.IncrementalBytes += ref.Size
			}
			chain := prev[j.op][j.kg]
			if j.full {
				chain = []FileRef{ref}
			} else {
				chain = append(append([]FileRef(nil), chain...), ref)
			}
			ops[j.op][j.kg] = chain
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	c.log.Debug("checkpoint state files written", "checkpoint", b.ID, "files", len(jobs), "after", time.Since(p.started).Round(time.Millisecond))
	names := make([]string, 0, len(ops))
	for name := range ops {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		os := OperatorState{Name: name}
		kgs := make([]int, 0, len(ops[name]))
		for kg := range ops[name] {
			kgs = append(kgs, kg)
		}
		sort.Ints(kgs)
		for _, kg := range kgs {
			os.KeyGroups = append(os.KeyGroups, KeyGroupState{KeyGroup: kg, Files: ops[name][kg]})
			for _, f := range ops[name][kg] {
				m.FullBytes += f.Size
			}
		}
		m.Operators = append(m.Operators, os)
	}
	m.Sinks = b.Sinks
	if c.hooks.Prepare != nil {
		sinks, err := c.hooks.Prepare(ctx, b.ID)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %d: prepare outputs: %w", b.ID, err)
		}
		m.Sinks = sinks
	}
	m.DurationMs = time.Since(p.started).Milliseconds()
	data, err := m.Encode()
	if err != nil {
		return nil, err
	}
	if err := c.store.Put(ctx, c.root+ManifestName(m.ID), bytes.NewReader(data), int64(len(data))); err != nil {
		return nil, fmt.Errorf("checkpoint %d: write manifest: %w", b.ID, err)
	}
	return m, nil
}

// needsFull reports whether a key group's next file starts a new chain.
func needsFull(chain []FileRef, cfg Config) bool {
	if len(chain) == 0 || len(chain) >= cfg.FullEvery {
		return true
	}
	var deltas int64
	for _, f := range chain[1:] {
		deltas += f.Size
	}
	return float64(deltas) > cfg.MaxDeltaRatio*float64(chain[0].Size)
}

// writeFile writes the full state or the changes of one key group. It
// skips the upload when a retained checkpoint already holds the same file.
func (c *Coordinator) writeFile(ctx context.Context, snap kv.Snapshot, kg int, full bool, known map[string]bool) (FileRef, bool, error) {
	var buf bytes.Buffer
	var err error
	kind := "delta"
	if full {
		kind = "full"
		err = kv.WriteKeyGroup(&buf, snap, kg)
	} else {
		err = kv.WriteChanges(&buf, snap, kg)
	}
	if err != nil {
		return FileRef{}, false, err
	}
	sum := sha256.Sum256(buf.Bytes())
	ref := FileRef{Name: fileName(sum[:], kind), Size: int64(buf.Len()), SHA256: fmt.Sprintf("%x", sum), Kind: kind}
	if known[ref.Name] {
		return ref, false, nil
	}
	if err := c.store.Put(ctx, c.root+ref.Name, bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
		return FileRef{}, false, err
	}
	return ref, true, nil
}

func chainsOf(m *Manifest) map[string]map[int][]FileRef {
	out := map[string]map[int][]FileRef{}
	for _, op := range m.Operators {
		kgs := map[int][]FileRef{}
		for _, kg := range op.KeyGroups {
			kgs[kg.KeyGroup] = kg.Files
		}
		out[op.Name] = kgs
	}
	return out
}

// collectGarbage deletes every shared file that no retained manifest names.
func (c *Coordinator) collectGarbage(ctx context.Context, retained []*Manifest) error {
	keep := map[string]bool{}
	for _, m := range retained {
		for _, f := range m.Files() {
			keep[c.root+f.Name] = true
		}
	}
	objs, err := c.store.List(ctx, c.root+"shared/")
	if err != nil {
		return err
	}
	var del []string
	for _, o := range objs {
		if !keep[o.Name] {
			del = append(del, o.Name)
		}
	}
	if len(del) == 0 {
		return nil
	}
	return storage.DeleteMany(ctx, c.store, del)
}

// notifyInput tells the input that checkpoint m completed, and which data
// no retained checkpoint needs any more. Failures are logged: the
// checkpoint is complete either way.
func (c *Coordinator) notifyInput(ctx context.Context, m *Manifest, retained []*Manifest) {
	if c.stream == nil || m.Position == nil {
		return
	}
	in := c.stream.Input()
	if cc, ok := in.(component.CheckpointCommitter); ok {
		if err := cc.CommitCheckpoint(ctx, m.Position); err != nil {
			c.log.Warn("input could not commit the checkpoint's position", "checkpoint", m.ID, "error", err)
		}
	}
	if r, ok := in.(component.Retainer); ok && len(retained) > 0 && retained[0].Position != nil {
		if err := r.ReleaseBefore(ctx, retained[0].Position); err != nil {
			c.log.Warn("input could not release data older than the oldest retained checkpoint", "checkpoint", retained[0].ID, "error", err)
		}
	}
}
