package state_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/weir-stream/weir/checkpoint/storage"
	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state"
)

// ledger is an external system with transactions (a Kafka topic read with
// read_committed, say), shared by the outputs of successive "processes".
type ledger struct {
	mu        sync.Mutex
	nextTxn   uint64
	visible   []string
	pending   map[uint64][]string // transaction → records, open or pre-committed
	committed map[uint64]bool
}

func newLedger() *ledger {
	return &ledger{pending: map[uint64][]string{}, committed: map[uint64]bool{}}
}

// Visible returns the committed records, in commit order.
func (l *ledger) Visible() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.visible)
}

// Pending returns how many records are written but not committed.
func (l *ledger) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.pending {
		n += len(r)
	}
	return n
}

// ledgerOutput is a two-phase-commit output (a component.Committer) over a
// ledger: one transaction per checkpoint epoch; the handle is the
// transaction's number.
type ledgerOutput struct {
	l *ledger

	failPreCommit, failCommit, failRecover atomic.Bool
	// onPreCommit and onCommit, if set, run at the start of the call.
	onPreCommit, onCommit func(id uint64)

	mu    sync.Mutex
	txn   uint64            // the open transaction, 0: none yet
	byID  map[uint64]uint64 // checkpoint id → its pre-committed transaction
	calls []string
}

func newLedgerOutput(l *ledger) *ledgerOutput {
	return &ledgerOutput{l: l, byID: map[uint64]uint64{}}
}

var _ component.Committer = (*ledgerOutput)(nil)

func (o *ledgerOutput) call(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, fmt.Sprintf(format, args...))
}

// Calls returns the 2PC calls made so far.
func (o *ledgerOutput) Calls() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.calls)
}

func (o *ledgerOutput) Connect(context.Context) error { return nil }
func (o *ledgerOutput) Close(context.Context) error   { return nil }

func (o *ledgerOutput) Write(_ context.Context, b *message.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.l.mu.Lock()
	defer o.l.mu.Unlock()
	if o.txn == 0 {
		o.l.nextTxn++
		o.txn = o.l.nextTxn
	}
	v := b.Values()
	for i := range v.Len() {
		o.l.pending[o.txn] = append(o.l.pending[o.txn], strings.Clone(v.String(i)))
	}
	return nil
}

func (o *ledgerOutput) PreCommit(_ context.Context, id uint64) ([]byte, error) {
	if o.onPreCommit != nil {
		o.onPreCommit(id)
	}
	o.call("pre-commit %d", id)
	if o.failPreCommit.Load() {
		return nil, errors.New("injected pre-commit failure")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	txn := o.txn
	o.byID[id] = txn
	o.txn = 0 // later records go to a new transaction
	return []byte(strconv.FormatUint(txn, 10)), nil
}

func (o *ledgerOutput) Commit(_ context.Context, id uint64, handle []byte) error {
	if o.onCommit != nil {
		o.onCommit(id)
	}
	o.call("commit %d %s", id, handle)
	if o.failCommit.Load() {
		return errors.New("injected commit failure")
	}
	txn, err := strconv.ParseUint(string(handle), 10, 64)
	if err != nil {
		return err
	}
	o.l.mu.Lock()
	defer o.l.mu.Unlock()
	if txn == 0 || o.l.committed[txn] {
		return nil // nothing written, or committed already: idempotent
	}
	o.l.committed[txn] = true
	o.l.visible = append(o.l.visible, o.l.pending[txn]...)
	delete(o.l.pending, txn)
	return nil
}

func (o *ledgerOutput) Abort(_ context.Context, id uint64) error {
	o.call("abort %d", id)
	o.mu.Lock()
	defer o.mu.Unlock()
	txn, ok := o.byID[id]
	if !ok { // not pre-committed: the open transaction
		txn, o.txn = o.txn, 0
	}
	o.l.mu.Lock()
	defer o.l.mu.Unlock()
	delete(o.l.pending, txn)
	return nil
}

func (o *ledgerOutput) Recover(ctx context.Context, id uint64, handle []byte) error {
	o.call("recover %d %s", id, handle)
	if o.failRecover.Load() {
		return errors.New("injected recover failure")
	}
	if handle != nil {
		if err := o.Commit(ctx, id, handle); err != nil {
			return err
		}
	}
	o.l.mu.Lock()
	defer o.l.mu.Unlock()
	clear(o.l.pending) // every other transaction is aborted (fenced)
	return nil
}

// plainOutput is an at-least-once output.
type plainOutput struct{}

func (plainOutput) Connect(context.Context) error               { return nil }
func (plainOutput) Write(context.Context, *message.Batch) error { return nil }
func (plainOutput) Close(context.Context) error                 { return nil }

// configuredOutput has the 2PC methods but is configured at-least-once.
type configuredOutput struct{ *ledgerOutput }

func (configuredOutput) ExactlyOnce() bool { return false }

func TestNewTwoPhaseCommitOutputRejects(t *testing.T) {
	env := newCkEnv(t, state.BackendMemory)
	m := env.open(state.ManagerConfig{})
	l := newLedger()
	for name, out := range map[string]component.Output{
		"without 2PC":        plainOutput{},
		"exactly_once false": configuredOutput{newLedgerOutput(l)},
		"nil":                nil,
	} {
		if _, err := state.NewTwoPhaseCommitOutput(out, m); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("%s: NewTwoPhaseCommitOutput = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := state.NewTwoPhaseCommitOutput(newLedgerOutput(l), nil); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("nil manager: %v", err)
	}
	o, err := state.NewTwoPhaseCommitOutput(newLedgerOutput(l), m)
	if err != nil || o.Name() != state.DefaultOutputName {
		t.Fatalf("NewTwoPhaseCommitOutput = %v, %v", o, err)
	}
	if _, err := state.NewTwoPhaseCommitOutput(newLedgerOutput(l), m); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("a second output named %q: %v, want ErrInvalid", state.DefaultOutputName, err)
	}
	if _, err := state.NewTwoPhaseCommitOutput(newLedgerOutput(l), m, state.WithOutputName("audit")); err != nil {
		t.Errorf("a second output with its own name: %v", err)
	}
	if err := m.RegisterParticipant("", newLedgerOutput(l)); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("RegisterParticipant without a name: %v", err)
	}
	if _, _, err := m.RecoverFromLatestCheckpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := state.NewTwoPhaseCommitOutput(newLedgerOutput(l), m, state.WithOutputName("late")); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("an output registered after recovery: %v, want ErrInvalid", err)
	}
}

// TestTwoPhaseCommitCheckpoint: the output is pre-committed before the
// manifest is stored, its handle is in the manifest, and it is committed
// after; records written after a checkpoint wait for the next one.
func TestTwoPhaseCommitCheckpoint(t *testing.T) {
	ctx := context.Background()
	env := newCkEnv(t, state.BackendMemory)
	m := env.open(state.ManagerConfig{})
	l := newLedger()
	out := newLedgerOutput(l)
	var order []string // written by the checkpoint's goroutine only
	out.onPreCommit = func(id uint64) {
		order = append(order, fmt.Sprintf("pre-commit %d, manifests %v", id, env.list("manifests/")))
	}
	out.onCommit = func(id uint64) {
		order = append(order, fmt.Sprintf("commit %d, manifests %d", id, len(env.list("manifests/"))))
	}
	o, err := state.NewTwoPhaseCommitOutput(out, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := m.RecoverFromLatestCheckpoint(ctx); ok || err != nil {
		t.Fatalf("Recover = %v, %v", ok, err)
	}
	if err := o.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := o.Write(ctx, message.FromStrings("a", "b")); err != nil {
		t.Fatal(err)
	}
	if got := l.Visible(); len(got) != 0 {
		t.Fatalf("visible before a checkpoint: %v", got)
	}
	id, err := m.CreateCheckpoint(ctx)
	if err != nil || id != 1 {
		t.Fatalf("CreateCheckpoint = %d, %v", id, err)
	}
	if err := o.Write(ctx, message.FromStrings("c")); err != nil {
		t.Fatal(err)
	}
	if got := l.Visible(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("visible after checkpoint 1: %v", got)
	}
	if got := string(env.manifest(1).Sinks[state.DefaultOutputName]); got != "1" {
		t.Fatalf("manifest's handle = %q, want the transaction 1", got)
	}
	if _, err := m.CreateCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if got := l.Visible(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("visible after checkpoint 2: %v", got)
	}
	want := []string{"pre-commit 1, manifests []", "commit 1, manifests 1", "pre-commit 2, manifests [manifests/chk-00000000000000000001.json]", "commit 2, manifests 2"}
	if !slices.Equal(order, want) {
		t.Fatalf("order:\n%s\nwant:\n%s", strings.Join(order, "\n"), strings.Join(want, "\n"))
	}
	want = []string{"recover 0 ", "pre-commit 1", "commit 1 1", "pre-commit 2", "commit 2 2"}
	if got := out.Calls(); !slices.Equal(got, want) {
		t.Fatalf("calls = %q, want %q", got, want)
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// A new process recovers checkpoint 2: Recover gets its handle.
	m2 := env.open(state.ManagerConfig{})
	out2 := newLedgerOutput(l)
	if _, err := state.NewTwoPhaseCommitOutput(out2, m2); err != nil {
		t.Fatal(err)
	}
	if id, ok, err := m2.RecoverFromLatestCheckpoint(ctx); id != 2 || !ok || err != nil {
		t.Fatalf("Recover = %d, %v, %v", id, ok, err)
	}
	if got := out2.Calls(); !slices.Equal(got, []string{"recover 2 2", "commit 2 2"}) {
		t.Fatalf("calls = %q", got)
	}
	if got := l.Visible(); len(got) != 3 {
		t.Fatalf("visible after recovery: %v", got)
	}
}

// TestTwoPhaseCommitPreCommitFailure: a pre-commit that fails aborts every
// participant's epoch, stores no manifest, and the manager must recover.
func TestTwoPhaseCommitPreCommitFailure(t *testing.T) {
	ctx := context.Background()
	env := newCkEnv(t, state.BackendMemory)
	m := env.open(state.ManagerConfig{})
	l1, l2 := newLedger(), newLedger()
	out1, out2 := newLedgerOutput(l1), newLedgerOutput(l2)
	o1, err := state.NewTwoPhaseCommitOutput(out1, m, state.WithOutputName("one"))
	if err != nil {
		t.Fatal(err)
	}
	o2, err := state.NewTwoPhaseCommitOutput(out2, m, state.WithOutputName("two"))
	if err != nil {
		t.Fatal(err)
	}
	_ = o1.Write(ctx, message.FromStrings("a"))
	_ = o2.Write(ctx, message.FromStrings("b"))
	out2.failPreCommit.Store(true)
	if _, err := m.CreateCheckpoint(ctx); err == nil || errors.Is(err, state.ErrRecoveryRequired) {
		t.Fatalf("CreateCheckpoint = %v, want the pre-commit's failure", err)
	}
	if got := env.list("manifests/"); len(got) != 0 {
		t.Fatalf("manifests = %v", got)
	}
	if got := out1.Calls(); !slices.Equal(got, []string{"pre-commit 1", "abort 1"}) {
		t.Fatalf("calls of one = %q", got)
	}
	if got := out2.Calls(); !slices.Equal(got, []string{"pre-commit 1", "abort 1"}) {
		t.Fatalf("calls of two = %q", got)
	}
	if l1.Pending()+l2.Pending() != 0 {
		t.Fatal("records of an aborted epoch are still pending")
	}
	out2.failPreCommit.Store(false)
	if _, err := m.CreateCheckpoint(ctx); !errors.Is(err, state.ErrRecoveryRequired) {
		t.Fatalf("CreateCheckpoint after an aborted epoch = %v, want ErrRecoveryRequired", err)
	}
}

// manifestStorage fails the Put of manifests: before storing them, or
// after.
type manifestStorage struct {
	storage.Storage
	mode atomic.Int32 // 0: works; 1: fails before storing; 2: stores, then fails
}

func (s *manifestStorage) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	mode := s.mode.Load()
	if mode == 0 || !strings.Contains(name, "manifests/") {
		return s.Storage.Put(ctx, name, r, size)
	}
	if mode == 2 {
		if err := s.Storage.Put(ctx, name, r, size); err != nil {
			return err
		}
	}
	return &storage.Error{Op: "put", Location: name, Transient: true, Err: errors.New("injected failure")}
}

// TestTwoPhaseCommitStorageFailure: a checkpoint whose files cannot be
// written aborts the epoch; one whose manifest fails leaves it to recovery,
// which commits it if the manifest was stored and aborts it otherwise.
func TestTwoPhaseCommitStorageFailure(t *testing.T) {
	ctx := context.Background()
	t.Run("files", func(t *testing.T) {
		env := newCkEnv(t, state.BackendMemory)
		fs := &failingStorage{Storage: env.store}
		m := env.open(state.ManagerConfig{Checkpoints: state.CheckpointConfig{Storage: fs}})
		out := newLedgerOutput(newLedger())
		o, err := state.NewTwoPhaseCommitOutput(out, m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.CreateCheckpoint(ctx); err != nil {
			t.Fatal(err)
		}
		_ = state.PutTyped(m.State(), "k", 1)
		_ = o.Write(ctx, message.FromStrings("a"))
		fs.fail.Store(true)
		if _, err := m.CreateCheckpoint(ctx); err == nil {
			t.Fatal("CreateCheckpoint with a failing storage succeeded")
		}
		fs.fail.Store(false)
		if got := out.Calls(); !slices.Equal(got, []string{"pre-commit 1", "commit 1 0", "pre-commit 2", "abort 2"}) {
			t.Fatalf("calls = %q", got)
		}
		if _, err := m.CreateCheckpoint(ctx); !errors.Is(err, state.ErrRecoveryRequired) {
			t.Fatalf("CreateCheckpoint after an aborted epoch = %v, want ErrRecoveryRequired", err)
		}
	})
	for _, tc := range []struct {
		name    string
		mode    int32
		visible []string
	}{
		{"manifest not stored", 1, nil},
		{"manifest stored", 2, []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newCkEnv(t, state.BackendMemory)
			ms := &manifestStorage{Storage: env.store}
			m := env.open(state.ManagerConfig{Checkpoints: state.CheckpointConfig{Storage: ms}})
			l := newLedger()
			out := newLedgerOutput(l)
			o, err := state.NewTwoPhaseCommitOutput(out, m)
			if err != nil {
				t.Fatal(err)
			}
			_ = o.Write(ctx, message.FromStrings("a"))
			ms.mode.Store(tc.mode)
			if _, err := m.CreateCheckpoint(ctx); err == nil {
				t.Fatal("CreateCheckpoint with a failing manifest succeeded")
			}
			ms.mode.Store(0)
			if got := out.Calls(); !slices.Equal(got, []string{"pre-commit 1"}) {
				t.Fatalf("calls = %q, want no abort: the manifest may be stored", got)
			}
			if _, err := m.CreateCheckpoint(ctx); !errors.Is(err, state.ErrRecoveryRequired) {
				t.Fatalf("CreateCheckpoint after a failed manifest = %v, want ErrRecoveryRequired", err)
			}
			m2 := env.open(state.ManagerConfig{})
			if _, err := state.NewTwoPhaseCommitOutput(newLedgerOutput(l), m2); err != nil {
				t.Fatal(err)
			}
			if _, _, err := m2.RecoverFromLatestCheckpoint(ctx); err != nil {
				t.Fatal(err)
			}
			if got := l.Visible(); !slices.Equal(got, tc.visible) || l.Pending() != 0 {
				t.Fatalf("after recovery visible = %q (want %q), %d pending", got, tc.visible, l.Pending())
			}
		})
	}
}

// TestTwoPhaseCommitCommitFailure: a commit that fails is reported with
// the complete checkpoint's id and retried before the next checkpoint,
// which fails while the retry does.
func TestTwoPhaseCommitCommitFailure(t *testing.T) {
	ctx := context.Background()
	env := newCkEnv(t, state.BackendMemory)
	m := env.open(state.ManagerConfig{})
	l := newLedger()
	out := newLedgerOutput(l)
	o, err := state.NewTwoPhaseCommitOutput(out, m)
	if err != nil {
		t.Fatal(err)
	}
	_ = o.Write(ctx, message.FromStrings("a"))
	out.failCommit.Store(true)
	id, err := m.CreateCheckpoint(ctx)
	if id != 1 || err == nil {
		t.Fatalf("CreateCheckpoint = %d, %v; want 1 and the commit's failure", id, err)
	}
	_ = o.Write(ctx, message.FromStrings("b"))
	if _, err := m.CreateCheckpoint(ctx); err == nil {
		t.Fatal("CreateCheckpoint while an earlier commit fails succeeded")
	}
	if got := env.list("manifests/"); len(got) != 1 {
		t.Fatalf("manifests = %v, want only checkpoint 1's", got)
	}
	out.failCommit.Store(false)
	if id, err := m.CreateCheckpoint(ctx); id != 2 || err != nil {
		t.Fatalf("CreateCheckpoint = %d, %v", id, err)
	}
	if got := l.Visible(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("visible = %q", got)
	}
	want := []string{"pre-commit 1", "commit 1 1", "commit 1 1", "commit 1 1", "pre-commit 2", "commit 2 2"}
	if got := out.Calls(); !slices.Equal(got, want) {
		t.Fatalf("calls = %q, want %q", got, want)
	}
}

// TestTwoPhaseCommitRecoverFailure: a participant that fails to recover
// fails the recovery, and the manager cannot checkpoint.
func TestTwoPhaseCommitRecoverFailure(t *testing.T) {
	ctx := context.Background()
	env := newCkEnv(t, state.BackendMemory)
	m := env.open(state.ManagerConfig{})
	out := newLedgerOutput(newLedger())
	if _, err := state.NewTwoPhaseCommitOutput(out, m); err != nil {
		t.Fatal(err)
	}
	out.failRecover.Store(true)
	if _, _, err := m.RecoverFromLatestCheckpoint(ctx); err == nil {
		t.Fatal("RecoverFromLatestCheckpoint with a failing participant succeeded")
	}
	out.failRecover.Store(false)
	if _, err := m.CreateCheckpoint(ctx); !errors.Is(err, state.ErrRecoveryRequired) {
		t.Fatalf("CreateCheckpoint = %v, want ErrRecoveryRequired", err)
	}
}

// rawParticipant records its calls and returns a nil handle.
type rawParticipant struct {
	mu    sync.Mutex
	calls []string
}

func (p *rawParticipant) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, s)
}

func (p *rawParticipant) PreCommit(_ context.Context, id uint64) ([]byte, error) {
	p.add(fmt.Sprint("pre-commit ", id))
	return nil, nil
}

func (p *rawParticipant) Commit(_ context.Context, id uint64, h []byte) error {
	p.add(fmt.Sprintf("commit %d %v", id, h == nil))
	return nil
}

func (p *rawParticipant) Abort(_ context.Context, id uint64) error {
	p.add(fmt.Sprint("abort ", id))
	return nil
}

func (p *rawParticipant) Recover(_ context.Context, id uint64, h []byte) error {
	p.add(fmt.Sprintf("recover %d %v", id, h == nil))
	return nil
}

// TestRegisterParticipant: any CheckpointParticipant takes part, in
// registration order, with a nil handle too; a manager without
// participants writes no Sinks.
func TestRegisterParticipant(t *testing.T) {
	ctx := context.Background()
	env := newCkEnv(t, state.BackendPebble)
	m := env.open(state.ManagerConfig{})
	p := &rawParticipant{}
	if err := m.RegisterParticipant("raw", p); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterParticipant("raw", &rawParticipant{}); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("a name registered twice: %v", err)
	}
	if _, err := m.CreateCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterParticipant("late", &rawParticipant{}); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("registered after a checkpoint: %v", err)
	}
	if h, ok := env.manifest(1).Sinks["raw"]; !ok || h != nil {
		t.Fatalf("manifest Sinks[raw] = %q, %v", h, ok)
	}
	m2 := env.open(state.ManagerConfig{})
	p2 := &rawParticipant{}
	if err := m2.RegisterParticipant("raw", p2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m2.RecoverFromLatestCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := append(p.calls, p2.calls...), []string{"pre-commit 1", "commit 1 true", "recover 1 true"}; !slices.Equal(got, want) {
		t.Fatalf("calls = %q, want %q", got, want)
	}

	plain := newCkEnv(t, state.BackendMemory)
	pm := plain.open(state.ManagerConfig{})
	if _, err := pm.CreateCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if s := plain.manifest(1).Sinks; s != nil {
		t.Fatalf("Sinks without participants = %v", s)
	}
}
