package state_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state"
)

// wordCounter counts words in m's State and returns a record "word=count"
// per occurrence (the word count of examples/exactly_once_kafka.yaml): a
// record tells how many times the state has counted its word, so a word
// counted twice shows in the output.
func wordCounter(m *state.Manager) state.ProcessorFunc {
	return func(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
		s := m.State()
		words := b.Values()
		counts := map[string]int{}
		out := make([]string, 0, words.Len())
		for i := range words.Len() {
			w := strings.Clone(words.String(i))
			n, ok := counts[w]
			if !ok {
				var err error
				if n, _, err = state.GetTyped[int](s, w); err != nil {
					return nil, err
				}
			}
			n++
			counts[w] = n
			out = append(out, fmt.Sprintf("%s=%d", w, n))
		}
		for w, n := range counts {
			if err := s.BatchPut(w, n); err != nil {
				_ = s.AbortBatch()
				return nil, err
			}
		}
		if err := s.CommitBatch(); err != nil {
			return nil, err
		}
		return []*message.Batch{message.FromStrings(out...)}, nil
	}
}

var vocabulary = []string{"to", "be", "or", "not", "that", "is", "question"}

// wordBatch returns batch seq of the test input: a few words.
func wordBatch(seq uint64) *message.Batch {
	words := make([]string, 4)
	for j := range words {
		words[j] = vocabulary[(int(seq)*5+j*3)%len(vocabulary)]
	}
	return message.FromStrings(words...)
}

func TestExactlyOnceProcessorSkipsReplays(t *testing.T) {
	ctx := context.Background()
	m, err := state.NewManager(state.ManagerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var applied []string
	inner := state.ProcessorFunc(func(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
		applied = append(applied, b.Values().String(0))
		return []*message.Batch{b}, nil
	})
	p := state.NewExactlyOnceProcessor(inner, m, "op")
	if _, ok, err := p.Seq(); ok || err != nil {
		t.Fatalf("Seq before any batch = %v, %v", ok, err)
	}
	for _, c := range []struct {
		seq    uint64
		replay bool
	}{{1, false}, {2, false}, {2, true}, {1, true}, {5, false}, {3, true}, {6, false}} {
		outs, err := p.ProcessAt(ctx, c.seq, message.FromStrings(fmt.Sprint(c.seq)))
		if err != nil {
			t.Fatal(err)
		}
		if c.replay != (len(outs) == 0) {
			t.Fatalf("seq %d: %d batches out, replay %v", c.seq, len(outs), c.replay)
		}
	}
	if want := []string{"1", "2", "5", "6"}; !slices.Equal(applied, want) {
		t.Fatalf("applied %q, want %q", applied, want)
	}
	if got := p.Skipped(); got != 3 {
		t.Fatalf("Skipped = %d, want 3", got)
	}
	if seq, ok, err := p.Seq(); seq != 6 || !ok || err != nil {
		t.Fatalf("Seq = %d, %v, %v", seq, ok, err)
	}
	// Another operator id has its own position.
	q := state.NewExactlyOnceProcessor(inner, m, "other")
	if outs, err := q.ProcessAt(ctx, 1, message.FromStrings("q1")); len(outs) != 1 || err != nil {
		t.Fatalf("other operator: %d, %v", len(outs), err)
	}
	if st := m.Stats(); st.ActiveTransactions != 0 {
		t.Fatalf("active transactions = %d", st.ActiveTransactions)
	}
}

// TestExactlyOnceProcessorPositions: Process takes the batch's Pos, which
// ProcessAt's sequence numbers agree with; a batch without one fails.
func TestExactlyOnceProcessorPositions(t *testing.T) {
	ctx := context.Background()
	m, err := state.NewManager(state.ManagerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	n := 0
	inner := state.ProcessorFunc(func(context.Context, *message.Batch) ([]*message.Batch, error) {
		n++
		return nil, nil
	})
	p := state.NewExactlyOnceProcessor(inner, m, "op")
	at := func(seq uint64) *message.Batch {
		b := message.FromStrings("x")
		b.Pos = binary.BigEndian.AppendUint64(nil, seq) // as the file and generate inputs do
		return b
	}
	for _, b := range []*message.Batch{at(10), at(9), at(10), at(11)} {
		if _, err := p.Process(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.ProcessAt(ctx, 11, message.FromStrings("x")); err != nil {
		t.Fatal(err)
	}
	if n != 2 || p.Skipped() != 3 {
		t.Fatalf("applied %d, skipped %d; want 2 and 3", n, p.Skipped())
	}
	if pos, ok, err := p.Position(); !ok || err != nil || binary.BigEndian.Uint64(pos) != 11 {
		t.Fatalf("Position = %x, %v, %v", pos, ok, err)
	}
	if _, err := p.Process(ctx, message.FromStrings("x")); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("a batch without Pos: %v, want ErrInvalid", err)
	}

	// Positions of another width are compared as bytes; Seq refuses them.
	r := state.NewExactlyOnceProcessor(inner, m, "offsets")
	b := message.FromStrings("x")
	b.Pos = []byte("offset-0042")
	if _, err := r.Process(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Seq(); !errors.Is(err, state.ErrTypeMismatch) {
		t.Fatalf("Seq of an 11-byte position: %v, want ErrTypeMismatch", err)
	}

	for name, bad := range map[string]*state.ExactlyOnceProcessor{
		"nil processor": state.NewExactlyOnceProcessor(nil, m, "op"),
		"nil manager":   state.NewExactlyOnceProcessor(inner, nil, "op"),
		"empty id":      state.NewExactlyOnceProcessor(inner, m, ""),
	} {
		if _, err := bad.ProcessAt(ctx, 1, message.FromStrings("x")); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// TestExactlyOnceProcessorFailure: a batch that fails is not recorded, so
// its retry is applied.
func TestExactlyOnceProcessorFailure(t *testing.T) {
	ctx := context.Background()
	m, err := state.NewManager(state.ManagerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fail := true
	count := wordCounter(m)
	inner := state.ProcessorFunc(func(ctx context.Context, b *message.Batch) ([]*message.Batch, error) {
		if fail {
			return nil, errors.New("injected failure")
		}
		return count(ctx, b)
	})
	closed := false
	p := state.NewExactlyOnceProcessor(closer{inner, &closed}, m, "op")
	if _, err := p.ProcessAt(ctx, 1, message.FromStrings("a")); err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("ProcessAt = %v, want the processor's error", err)
	}
	if _, ok, _ := p.Seq(); ok {
		t.Fatal("a failed batch was recorded")
	}
	fail = false
	if outs, err := p.ProcessAt(ctx, 1, message.FromStrings("a")); err != nil || len(outs) != 1 {
		t.Fatalf("retry: %d, %v", len(outs), err)
	}
	if n, _, _ := state.GetTyped[int](m.State(), "a"); n != 1 {
		t.Fatalf("a = %d, want 1", n)
	}
	if err := p.Close(ctx); err != nil || !closed {
		t.Fatalf("Close = %v, inner closed %v", err, closed)
	}
}

type closer struct {
	state.Processor
	closed *bool
}

func (c closer) Close(context.Context) error {
	*c.closed = true
	return nil
}

// TestExactlyOnceProcessorConcurrent: concurrent callers replaying the
// same batches are serialized; each batch is applied at most once, in
// increasing order.
func TestExactlyOnceProcessorConcurrent(t *testing.T) {
	ctx := context.Background()
	m, err := state.NewManager(state.ManagerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var applied []uint64 // serialized by the processor
	inner := state.ProcessorFunc(func(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
		applied = append(applied, binary.BigEndian.Uint64(b.Pos))
		return nil, nil
	})
	p := state.NewExactlyOnceProcessor(inner, m, "op")
	const callers, batches = 4, 200
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for seq := uint64(1); seq <= batches; seq++ {
				b := message.FromStrings("x")
				b.Pos = binary.BigEndian.AppendUint64(nil, seq)
				if _, err := p.Process(ctx, b); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if !slices.IsSorted(applied) || len(slices.Compact(slices.Clone(applied))) != len(applied) {
		t.Fatalf("applied out of order or twice: %v", applied)
	}
	if got := uint64(len(applied)) + p.Skipped(); got != callers*batches {
		t.Fatalf("applied + skipped = %d, want %d", got, callers*batches)
	}
	if seq, _, _ := p.Seq(); seq != batches {
		t.Fatalf("Seq = %d, want %d", seq, batches)
	}
}

// process is one run of a word-count pipeline: a manager over the test's
// checkpoint storage, an exactly-once word counter, and a two-phase-commit
// output into the shared ledger.
type process struct {
	m   *state.Manager
	eo  *state.ExactlyOnceProcessor
	out *state.TwoPhaseCommitOutput
}

// start starts a process and recovers it; inside makes the processor write
// its output itself (from inside ProcessBatch) rather than the caller.
func start(t *testing.T, env *ckEnv, l *ledger, inside bool) (*process, uint64) {
	t.Helper()
	ctx := context.Background()
	p := &process{m: env.open(state.ManagerConfig{})}
	var err error
	if p.out, err = state.NewTwoPhaseCommitOutput(newLedgerOutput(l), p.m); err != nil {
		t.Fatal(err)
	}
	id, _, err := p.m.RecoverFromLatestCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.out.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	inner := wordCounter(p.m)
	if inside {
		count := inner
		inner = func(ctx context.Context, b *message.Batch) ([]*message.Batch, error) {
			outs, err := count(ctx, b)
			if err != nil {
				return nil, err
			}
			for _, o := range outs {
				if err := p.out.Write(ctx, o); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}
	}
	p.eo = state.NewExactlyOnceProcessor(inner, p.m, "word_count")
	return p, id
}

// step processes batch seq and writes its output.
func (p *process) step(t *testing.T, seq uint64) {
	t.Helper()
	ctx := context.Background()
	outs, err := p.eo.ProcessAt(ctx, seq, wordBatch(seq))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		if err := p.out.Write(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
}

func (p *process) checkpoint(t *testing.T) uint64 {
	t.Helper()
	id, err := p.m.CreateCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// counts returns the word counts in p's state.
func (p *process) counts(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, w := range vocabulary {
		n, _, err := state.GetTyped[int](p.m.State(), w)
		if err != nil {
			t.Fatal(err)
		}
		out[w] = n
	}
	return out
}

// reference runs batches 1..n without a crash and returns the counts and
// the visible output.
func reference(t *testing.T, kind state.BackendKind, n uint64) (map[string]int, []string) {
	t.Helper()
	l := newLedger()
	p, _ := start(t, newCkEnv(t, kind), l, false)
	for seq := uint64(1); seq <= n; seq++ {
		p.step(t, seq)
	}
	p.checkpoint(t)
	return p.counts(t), l.Visible()
}

// checkOnce fails unless got equals want and has no record twice.
func checkOnce(t *testing.T, got, want []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range got {
		if seen[r] {
			t.Fatalf("record %s is visible twice", r)
		}
		seen[r] = true
	}
	if !slices.Equal(got, want) {
		t.Fatalf("visible output:\n%q\nwant (a run without crash):\n%q", got, want)
	}
}

// TestExactlyOnceAcrossCrash: batches 1..10 with a checkpoint after 5 and
// a crash after 8; a new process recovers and the source replays — from
// the checkpoint's position, or from the start as an at-least-once source
// would. The state and the visible output equal those of a run without a
// crash: every record exactly once.
func TestExactlyOnceAcrossCrash(t *testing.T) {
	const total, checkpointAt, crashAt = 10, 5, 8
	for _, kind := range backendKinds() {
		wantCounts, wantVisible := reference(t, kind, total)
		for _, fromStart := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/replay_from_start=%v", kind, fromStart), func(t *testing.T) {
				env := newCkEnv(t, kind)
				l := newLedger()
				p1, id := start(t, env, l, false)
				if id != 0 {
					t.Fatalf("recovered %d on a first run", id)
				}
				var visibleAtCheckpoint int
				for seq := uint64(1); seq <= crashAt; seq++ {
					p1.step(t, seq)
					if seq == checkpointAt {
						if id := p1.checkpoint(t); id != 1 {
							t.Fatalf("checkpoint %d, want 1", id)
						}
						visibleAtCheckpoint = len(l.Visible())
					}
				}
				// Crash: p1 is abandoned; batches 6..8 are in its state and
				// their records pending in the ledger, but in no checkpoint.
				if got := l.Visible(); len(got) != visibleAtCheckpoint || l.Pending() == 0 {
					t.Fatalf("before the crash %d records visible (want %d), %d pending", len(got), visibleAtCheckpoint, l.Pending())
				}
				checkOnce(t, l.Visible(), wantVisible[:visibleAtCheckpoint])

				p2, id := start(t, env, l, false)
				if id != 1 {
					t.Fatalf("recovered checkpoint %d, want 1", id)
				}
				if l.Pending() != 0 {
					t.Fatal("recovery left the crashed process's records pending")
				}
				seq, ok, err := p2.eo.Seq()
				if seq != checkpointAt || !ok || err != nil {
					t.Fatalf("recovered position = %d, %v, %v; want %d", seq, ok, err, checkpointAt)
				}
				from := seq + 1
				if fromStart {
					from = 1
				}
				for s := from; s <= total; s++ {
					p2.step(t, s)
				}
				p2.checkpoint(t)
				if want := checkpointAt - from + 1; p2.eo.Skipped() != want {
					t.Fatalf("skipped %d batches, want %d", p2.eo.Skipped(), want)
				}
				if got := p2.counts(t); !maps.Equal(got, wantCounts) {
					t.Fatalf("counts %v, want %v", got, wantCounts)
				}
				checkOnce(t, l.Visible(), wantVisible)
			})
		}
	}
}

// TestExactlyOnceConcurrentCheckpoints: checkpoints taken by another
// goroutine while batches run, the processor writing its output from
// inside ProcessBatch; a crash at the end of the input (after the last
// checkpoint); recovery and a replay from the start. Exactly once still.
func TestExactlyOnceConcurrentCheckpoints(t *testing.T) {
	const total = 200
	wantCounts, wantVisible := reference(t, state.BackendMemory, total)
	env := newCkEnv(t, state.BackendMemory)
	l := newLedger()
	p1, _ := start(t, env, l, true)
	done := make(chan struct{})
	var wg sync.WaitGroup
	checkpoints := 0
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := p1.m.CreateCheckpoint(context.Background()); err != nil {
				t.Error(err)
				return
			}
			checkpoints++
		}
	})
	for seq := uint64(1); seq <= total; seq++ {
		p1.step(t, seq)
	}
	close(done)
	wg.Wait()
	if checkpoints == 0 {
		t.Log("no checkpoint ran during the batches")
	}

	p2, _ := start(t, env, l, true)
	for seq := uint64(1); seq <= total; seq++ {
		p2.step(t, seq)
	}
	p2.checkpoint(t)
	if got := p2.counts(t); !maps.Equal(got, wantCounts) {
		t.Fatalf("counts %v, want %v", got, wantCounts)
	}
	checkOnce(t, l.Visible(), wantVisible)
}
