package state

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state/kv"
)

// ErrRecoveryRequired is wrapped by the errors of a Manager that can no
// longer complete checkpoints without losing output: a checkpoint failed
// after its participants were pre-committed (their epoch is aborted, or in
// doubt), or the participants' recovery failed. The state holds changes
// whose records were discarded; recover into a new manager
// (RecoverFromLatestCheckpoint) and replay from its position.
var ErrRecoveryRequired = errors.New("recovery required")

// CheckpointParticipant takes part in a Manager's checkpoints by two-phase
// commit (see RegisterParticipant). Its methods have the contract of
// component.Committer's, and every component.Committer is one:
//
//   - PreCommit(id) is called when checkpoint id freezes the state, while
//     no batch runs (ProcessBatch is held back): what was written before
//     becomes durable but stays invisible, and later writes belong to the
//     next epoch. The handle it returns — what Commit needs to finish the
//     epoch in another process — is stored in the checkpoint's manifest.
//   - Commit(id, handle) makes the epoch visible once the manifest is
//     stored; it is called again after a failure, and by recovery, so it
//     must be idempotent.
//   - Abort(id) discards the epoch of a checkpoint that failed.
//   - Recover(id, handle) is called by RecoverFromLatestCheckpoint with the
//     restored checkpoint's id and handle (0 and nil when there is none):
//     commit that epoch (again) and abort every other pending one.
//
// The Manager calls them from the goroutine of CreateCheckpoint or
// RecoverFromLatestCheckpoint, one checkpoint at a time.
type CheckpointParticipant interface {
	PreCommit(ctx context.Context, id uint64) (handle []byte, err error)
	Commit(ctx context.Context, id uint64, handle []byte) error
	Abort(ctx context.Context, id uint64) error
	Recover(ctx context.Context, id uint64, handle []byte) error
}

var _ CheckpointParticipant = component.Committer(nil)

// participant is a registered CheckpointParticipant.
type participant struct {
	name string
	p    CheckpointParticipant
}

// pendingCommit is a commit of a completed checkpoint that failed.
type pendingCommit struct {
	participant
	id     uint64
	handle []byte
}

// RegisterParticipant makes p take part in the manager's checkpoints
// under name (see CreateCheckpoint and RecoverFromLatestCheckpoint): its
// handles are stored in the manifests' Sinks under name, so name must be
// the same in the process that recovers. Participants are called in the
// order they were registered.
//
// Register every participant before the manager's first CreateCheckpoint
// or RecoverFromLatestCheckpoint (later it fails with ErrInvalid: a
// participant that joins later was not recovered), and call
// RecoverFromLatestCheckpoint at start even on a first run, so that
// Recover(0, nil) aborts whatever an earlier process left pending. An
// empty name, a nil p or a name registered before fail with ErrInvalid.
func (m *Manager) RegisterParticipant(name string, p CheckpointParticipant) error {
	if name == "" || p == nil {
		return kv.NewError("register participant", name, fmt.Errorf("%w: empty name or nil participant", kv.ErrInvalid))
	}
	m.ck.mu.Lock()
	defer m.ck.mu.Unlock()
	if m.ck.loaded {
		return kv.NewError("register participant", name, fmt.Errorf("%w: register participants before the manager's first CreateCheckpoint or RecoverFromLatestCheckpoint", kv.ErrInvalid))
	}
	for _, q := range m.ck.participants {
		if q.name == name {
			return kv.NewError("register participant", name, fmt.Errorf("%w: a participant with this name is registered already", kv.ErrInvalid))
		}
	}
	m.ck.participants = append(m.ck.participants, participant{name: name, p: p})
	return nil
}

// preCommitParticipants pre-commits every participant for checkpoint id
// and returns their handles by name (nil without participants). Called
// with ck.mu and the gate held.
func (m *Manager) preCommitParticipants(ctx context.Context, id uint64) (map[string][]byte, error) {
	if len(m.ck.participants) == 0 {
		return nil, nil
	}
	handles := make(map[string][]byte, len(m.ck.participants))
	for _, q := range m.ck.participants {
		h, err := q.p.PreCommit(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("pre-commit %s: %w", q.name, err)
		}
		handles[q.name] = h
	}
	return handles, nil
}

// abortParticipants aborts epoch id of every participant after checkpoint
// id failed (cause) and makes the manager refuse later checkpoints. A
// failed abort is logged: recovery aborts the epoch. Called with ck.mu.
func (m *Manager) abortParticipants(ctx context.Context, id uint64, cause error) {
	if len(m.ck.participants) == 0 {
		return
	}
	for _, q := range m.ck.participants {
		if err := q.p.Abort(ctx, id); err != nil {
			m.cfg.Logger.Warn("aborting a participant's epoch failed; recovery aborts it", "participant", q.name, "checkpoint", id, "error", err)
		}
	}
	m.ck.broken = fmt.Errorf("%w: checkpoint %d failed after its outputs were pre-committed, and their epoch was aborted (%v)", ErrRecoveryRequired, id, cause)
}

// commitParticipants commits every participant's epoch of completed
// checkpoint id; failed commits are kept for retryCommits. Called with
// ck.mu.
func (m *Manager) commitParticipants(ctx context.Context, id uint64, handles map[string][]byte) error {
	var errs []error
	for _, q := range m.ck.participants {
		h := handles[q.name]
		if err := q.p.Commit(ctx, id, h); err != nil {
			m.ck.uncommitted = append(m.ck.uncommitted, pendingCommit{participant: q, id: id, handle: h})
			errs = append(errs, fmt.Errorf("commit %s: %w", q.name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("state: checkpoint %d is complete, but committing its outputs failed (retried before the next checkpoint, and by recovery): %w", id, errors.Join(errs...))
	}
	return nil
}

// retryCommits retries the commits that failed; it fails while one still
// does, because a later checkpoint's commit would not make that epoch
// visible, and its recovery would abort it. Called with ck.mu.
func (m *Manager) retryCommits(ctx context.Context) error {
	var left []pendingCommit
	var errs []error
	for _, c := range m.ck.uncommitted {
		if err := c.p.Commit(ctx, c.id, c.handle); err != nil {
			left = append(left, c)
			errs = append(errs, fmt.Errorf("commit %s of checkpoint %d: %w", c.name, c.id, err))
		}
	}
	m.ck.uncommitted = left
	if len(errs) > 0 {
		return fmt.Errorf("state: checkpoint: the outputs of a completed checkpoint are still not committed: %w", errors.Join(errs...))
	}
	return nil
}

// recoverParticipants recovers every participant to checkpoint id (0:
// none) with the handles of its manifest. Called with ck.mu.
func (m *Manager) recoverParticipants(ctx context.Context, id uint64, handles map[string][]byte) error {
	for _, q := range m.ck.participants {
		if err := q.p.Recover(ctx, id, handles[q.name]); err != nil {
			err = fmt.Errorf("state: recover participant %s (checkpoint %d): %w", q.name, id, err)
			m.ck.broken = fmt.Errorf("%w: %v", ErrRecoveryRequired, err)
			return err
		}
	}
	return nil
}

// DefaultOutputName is the participant name of a TwoPhaseCommitOutput
// built without WithOutputName.
const DefaultOutputName = "output"

// TwoPhaseCommitOption configures NewTwoPhaseCommitOutput.
type TwoPhaseCommitOption func(*twoPhaseOptions)

type twoPhaseOptions struct{ name string }

// WithOutputName names the output's handles in the checkpoint manifests
// (default DefaultOutputName). Outputs of one manager need distinct names,
// and a name must stay the same across restarts.
func WithOutputName(name string) TwoPhaseCommitOption {
	return func(o *twoPhaseOptions) { o.name = name }
}

// TwoPhaseCommitOutput is the guide's TwoPhaseCommitOutput: it writes to an
// output with two-phase commit in step with a Manager's checkpoints, so
// that readers of the output see each record of a checkpointed batch once,
// after a crash too.
//
//   - Write adds records to the current epoch of the output, invisible to
//     readers until it is committed.
//   - Manager.CreateCheckpoint pre-commits the output when it freezes the
//     state (later Writes belong to the next epoch), stores the handle in
//     the manifest, and commits the epoch once the manifest is stored.
//   - A failed checkpoint aborts the epoch; its records are written again
//     by the replay after recovery.
//   - Manager.RecoverFromLatestCheckpoint calls the output's Recover with
//     the restored checkpoint's id and handle: that epoch is committed
//     (again), every later one (written after the checkpoint, before the
//     crash) aborted.
//
// A record must be written in the same epoch as the state changes of the
// batch it came from, or a checkpoint could hold one without the other.
// Either call Process, Write and CreateCheckpoint from one goroutine (the
// usual loop: process a batch, write its output, checkpoint every so
// often), or, when checkpoints run on another goroutine, Write from inside
// the processor that ProcessBatch runs (an ExactlyOnceProcessor's inner
// processor): a checkpoint never falls inside a batch.
//
// Order of calls: NewTwoPhaseCommitOutput, RecoverFromLatestCheckpoint,
// Connect, then Writes. Write and Connect may be called from any
// goroutine; Write is serialized with the pre-commit.
type TwoPhaseCommitOutput struct {
	out  component.Committer
	name string
	mu   sync.Mutex // held by Write and PreCommit: a record is in one epoch
}

// NewTwoPhaseCommitOutput wraps out and registers it with m as the
// checkpoint participant WithOutputName (see RegisterParticipant: before
// m's first checkpoint or recovery). out must do two-phase commit: it
// implements component.Committer and, if it implements
// component.ExactlyOnce, reports true (kafka and file outputs with
// exactly_once: true). An at-least-once output is rejected with an error
// wrapping ErrInvalid: it cannot hold records back until a checkpoint
// completes.
func NewTwoPhaseCommitOutput(out component.Output, m *Manager, opts ...TwoPhaseCommitOption) (*TwoPhaseCommitOutput, error) {
	o := twoPhaseOptions{name: DefaultOutputName}
	for _, opt := range opts {
		opt(&o)
	}
	if out == nil || m == nil {
		return nil, kv.NewError("two-phase commit output", o.name, fmt.Errorf("%w: nil output or manager", kv.ErrInvalid))
	}
	c, ok := out.(component.Committer)
	if !ok {
		return nil, kv.NewError("two-phase commit output", o.name, fmt.Errorf("%w: %T is at-least-once: it does not implement two-phase commit (component.Committer)", kv.ErrInvalid, out))
	}
	if eo, ok := out.(component.ExactlyOnce); ok && !eo.ExactlyOnce() {
		return nil, kv.NewError("two-phase commit output", o.name, fmt.Errorf("%w: %T is configured at-least-once (exactly_once: false)", kv.ErrInvalid, out))
	}
	t := &TwoPhaseCommitOutput{out: c, name: o.name}
	if err := m.RegisterParticipant(o.name, twoPhaseParticipant{t}); err != nil {
		return nil, err
	}
	return t, nil
}

// Name returns the output's participant name.
func (o *TwoPhaseCommitOutput) Name() string { return o.name }

// Connect connects the output (after RecoverFromLatestCheckpoint).
func (o *TwoPhaseCommitOutput) Connect(ctx context.Context) error { return o.out.Connect(ctx) }

// Write adds b's records to the output's current epoch; they become
// visible when the next checkpoint completes. An error is the output's:
// retry the same batch (see component.Output).
func (o *TwoPhaseCommitOutput) Write(ctx context.Context, b *message.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.out.Write(ctx, b)
}

// Close closes the output. Records written since the last checkpoint stay
// uncommitted: the next process's recovery aborts them. The manager keeps
// calling the output at checkpoints, so close it after the last one.
func (o *TwoPhaseCommitOutput) Close(ctx context.Context) error { return o.out.Close(ctx) }

// twoPhaseParticipant is a TwoPhaseCommitOutput's side of the manager's
// checkpoints.
type twoPhaseParticipant struct{ o *TwoPhaseCommitOutput }

func (p twoPhaseParticipant) PreCommit(ctx context.Context, id uint64) ([]byte, error) {
	p.o.mu.Lock()
	defer p.o.mu.Unlock()
	return p.o.out.PreCommit(ctx, id)
}

func (p twoPhaseParticipant) Commit(ctx context.Context, id uint64, handle []byte) error {
	return p.o.out.Commit(ctx, id, handle)
}

func (p twoPhaseParticipant) Abort(ctx context.Context, id uint64) error {
	return p.o.out.Abort(ctx, id)
}

func (p twoPhaseParticipant) Recover(ctx context.Context, id uint64, handle []byte) error {
	return p.o.out.Recover(ctx, id, handle)
}
