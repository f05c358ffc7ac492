package checkpoint_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/weir-stream/weir/checkpoint"
	"github.com/weir-stream/weir/checkpoint/storage"
	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

// ledger is an external system with transactions, shared by the output
// instances of successive "processes".
type ledger struct {
	mu        sync.Mutex
	visible   []string
	pending   map[uint64][]string // epoch → records, pre-committed or open
	committed map[uint64]bool
}

// txOutput is a two-phase-commit output over a ledger.
type txOutput struct {
	l     *ledger
	mu    sync.Mutex
	epoch uint64 // records go to the epoch after the last pre-commit
}

func (o *txOutput) Connect(context.Context) error { return nil }
func (o *txOutput) Close(context.Context) error   { return nil }
func (o *txOutput) Write(_ context.Context, b *message.Batch) error {
	o.mu.Lock()
	e := o.epoch
	o.mu.Unlock()
	o.l.mu.Lock()
	defer o.l.mu.Unlock()
	v := b.Values()
	for i := 0; i < v.Len(); i++ {
		o.l.pending[e] = append(o.l.pending[e], v.String(i))
	}
	return nil
}
func (o *txOutput) PreCommit(_ context.Context, id uint64) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := []byte(strconv.FormatUint(o.epoch, 10))
	o.epoch = id // later records belong to the next epoch
	return h, nil
}
func (o *txOutput) Commit(_ context.Context, _ uint64, handle []byte) error {
	e, err := strconv.ParseUint(string(handle), 10, 64)
	if err != nil {
		return err
	}
	o.l.mu.Lock()
	defer o.l.mu.Unlock()
	if o.l.committed[e] {
		return nil // idempotent
	}
	o.l.committed[e] = true
	o.l.visible = append(o.l.visible, o.l.pending[e]...)
	delete(o.l.pending, e)
	return nil
}
func (o *txOutput) Abort(_ context.Context, id uint64) error { return nil }
func (o *txOutput) Recover(ctx context.Context, id uint64, handle []byte) error {
	if handle != nil {
		if err := o.Commit(ctx, id, handle); err != nil {
			return err
		}
	}
	o.l.mu.Lock()
	defer o.l.mu.Unlock()
	for e := range o.l.pending {
		delete(o.l.pending, e) // abort everything else
	}
	o.mu.Lock()
	o.epoch = id
	o.mu.Unlock()
	return nil
}

var _ component.Committer = (*txOutput)(nil)

// TestTwoPhaseCommitAcrossCrash runs a stateless stream into a
// two-phase-commit output, crashes it after a checkpoint (records written
// after it stay pending), and restarts: exactly every record is visible
// once.
func TestTwoPhaseCommitAcrossCrash(t *testing.T) {
	const total = 5000
	store, _ := storage.NewLocal(t.TempDir())
	l := &ledger{pending: map[uint64][]string{}, committed: map[uint64]bool{}}

	run := func(in *seqInput, crashAfterCheckpoint bool) {
		out := &txOutput{l: l}
		sc := streamConfig(in, out, 2)
		sc.Pipeline.Processors = nil
		h := newHarnessFromConfig(t, store, sc, checkpoint.Config{})
		if _, err := h.coord.Restore(context.Background(), 0, false); err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		wait := h.start(t, ctx)
		if crashAfterCheckpoint {
			<-in.paused
			if _, err := h.coord.CreateCheckpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			// Records after the checkpoint are written but not committed;
			// the crash (no final checkpoint) leaves them pending.
			stop()
			close(in.release)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	}
	run(&seqInput{total: total, batch: 50, keys: total, pauseAt: 2000, paused: make(chan struct{}), release: make(chan struct{})}, true)
	l.mu.Lock()
	n := len(l.visible)
	l.mu.Unlock()
	if n < 1900 || n > 2000 {
		t.Fatalf("after the first run %d records are visible, want those before the checkpoint (1900 or 2000)", n)
	}
	run(&seqInput{total: total, batch: 50, keys: total}, false)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.visible) != total {
		t.Fatalf("%d records visible after recovery, want exactly %d", len(l.visible), total)
	}
	seen := map[string]bool{}
	for _, r := range l.visible {
		if seen[r] {
			t.Fatalf("record %s visible twice", r)
		}
		seen[r] = true
	}
}
