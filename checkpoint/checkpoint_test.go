package checkpoint_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-stream/weir/checkpoint"
	"github.com/weir-stream/weir/checkpoint/storage"
	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/config"
	"github.com/weir-stream/weir/engine"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/metrics"
	"github.com/weir-stream/weir/state"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ---- test components ----

// seqInput emits records "k<seq%keys>" for seq in [0, total), batch records
// per batch, with the sequence as its position. It can pause before a
// given sequence until released.
type seqInput struct {
	total, batch, keys int
	next               int
	pauseAt            int
	paused             chan struct{} // closed by the reader when it pauses
	release            chan struct{} // closed by the test to resume
	pausedOnce         sync.Once
	released           bool // reader-only
}

func (in *seqInput) Connect(context.Context) error { return nil }
func (in *seqInput) Seek(pos []byte) error {
	in.next = int(binary.BigEndian.Uint64(pos))
	return nil
}
func (in *seqInput) Read(ctx context.Context) (*message.Batch, message.AckFunc, error) {
	if in.release != nil && !in.released && in.next >= in.pauseAt {
		in.pausedOnce.Do(func() { close(in.paused) })
		select {
		case <-in.release:
			in.released = true
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	if in.next >= in.total {
		return nil, nil, component.ErrEndOfInput
	}
	var vals []string
	for i := 0; i < in.batch && in.next < in.total; i++ {
		vals = append(vals, "k"+strconv.Itoa(in.next%in.keys))
		in.next++
	}
	b := message.FromStrings(vals...)
	b.Pos = binary.BigEndian.AppendUint64(nil, uint64(in.next))
	return b, nil, nil
}
func (in *seqInput) Close(context.Context) error { return nil }

// counter counts per key in keyed state and emits nothing; Flush (end of
// input) emits every key's count as "key=count".
type counter struct {
	kc    *state.KeyedContext
	count *state.ValueState[int64]
}

func newCounter(res component.Resources) (*counter, error) {
	b := res.State
	if fb, ok := b.(faultBackend); ok { // the engine snapshots the wrapper
		b = fb.Backend
	}
	kc, err := state.NewKeyedContext(b)
	if err != nil {
		return nil, err
	}
	vs, err := state.NewValueState[int64](kc, "count")
	if err != nil {
		return nil, err
	}
	return &counter{kc: kc, count: vs}, nil
}

func (c *counter) Keys(b *message.Batch, fn func(int, []byte)) error {
	v := b.Values()
	for i := 0; i < v.Len(); i++ {
		fn(i, v.Bytes(i))
	}
	return nil
}

func (c *counter) Process(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
	v := b.Values()
	for i := 0; i < v.Len(); i++ {
		if err := c.kc.SetCurrentKey(v.Bytes(i)); err != nil {
			return nil, err
		}
		n, _, err := c.count.Value()
		if err != nil {
			return nil, err
		}
		if err := c.count.Update(n + 1); err != nil {
			return nil, err
		}
	}
	return nil, c.kc.Flush()
}

func (c *counter) Flush(context.Context) ([]*message.Batch, error) {
	var rows []string
	err := c.count.Range(func(key []byte, n int64) bool {
		rows = append(rows, fmt.Sprintf("%s=%d", key, n))
		return true
	})
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return []*message.Batch{message.FromStrings(rows...)}, nil
}
func (c *counter) FlushInterval() time.Duration { return 0 }
func (c *counter) Close(context.Context) error  { return nil }

type memOut struct {
	mu   sync.Mutex
	rows []string
}

func (o *memOut) Connect(context.Context) error { return nil }
func (o *memOut) Write(_ context.Context, b *message.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	v := b.Values()
	for i := 0; i < v.Len(); i++ {
		o.rows = append(o.rows, v.String(i))
	}
	return nil
}
func (o *memOut) Close(context.Context) error { return nil }
func (o *memOut) sorted() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := append([]string(nil), o.rows...)
	sort.Strings(s)
	return s
}

var (
	regMu sync.Mutex
	objs  = map[string]any{}
	seq   int
)

func put(v any) string {
	regMu.Lock()
	defer regMu.Unlock()
	seq++
	id := strconv.Itoa(seq)
	objs[id] = v
	return id
}

func get(id string) any {
	regMu.Lock()
	defer regMu.Unlock()
	return objs[id]
}

func init() {
	f := []component.Field{{Name: "id", Type: component.TypeString}}
	component.RegisterInput(component.Spec{Name: "cp_test_in", Fields: f}, func(c *component.Config, _ component.Resources) (component.Input, error) {
		return get(c.String("id")).(component.Input), nil
	})
	component.RegisterProcessor(component.Spec{Name: "cp_test_count", Stateful: true}, func(_ *component.Config, res component.Resources) (component.Processor, error) {
		return newCounter(res)
	})
	component.RegisterOutput(component.Spec{Name: "cp_test_out", Fields: f}, func(c *component.Config, _ component.Resources) (component.Output, error) {
		return get(c.String("id")).(component.Output), nil
	})
}

func streamConfig(in component.Input, out component.Output, threads int) config.Stream {
	cc := func(typ string, v any) *component.Config {
		vals := map[string]any{}
		if v != nil {
			vals["id"] = put(v)
		}
		return component.NewConfig("t.yaml", "streams[0]", 1, typ, vals, nil)
	}
	sc := config.Stream{Name: "s", Input: cc("cp_test_in", in), Output: cc("cp_test_out", out)}
	sc.Pipeline.ThreadNum = threads
	sc.Pipeline.Processors = []*component.Config{cc("cp_test_count", nil)}
	return sc
}

// harness is one "process": a stream and its coordinator.
type harness struct {
	stream *engine.Stream
	coord  *checkpoint.Coordinator
	out    *memOut
}

func newHarness(t *testing.T, store storage.Storage, in component.Input, threads int, cfg checkpoint.Config) *harness {
	t.Helper()
	out := &memOut{}
	h := newHarnessFromConfig(t, store, streamConfig(in, out, threads), cfg)
	h.out = out
	return h
}

func newHarnessFromConfig(t *testing.T, store storage.Storage, sc config.Stream, cfg checkpoint.Config) *harness {
	t.Helper()
	h := &harness{}
	reg := metrics.New()
	opts := engine.Options{
		Metrics: reg,
		OnBarrier: func(ctx context.Context, s *engine.Stream, b *engine.Barrier) {
			h.coord.OnBarrier(ctx, s, b)
		},
		FinalCheckpoint: func(s *engine.Stream) uint64 { return h.coord.FinalCheckpoint(s) },
	}
	s, err := engine.NewStream(sc, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.stream = s
	if cfg.Pipeline == "" {
		cfg.Pipeline = "p"
	}
	cfg.Stream = "s"
	cfg.Backend = "memory"
	if cfg.Interval == 0 {
		cfg.Manual = true
	}
	h.coord, err = checkpoint.New(cfg, store, s, reg, nil, checkpoint.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// start runs the coordinator and the stream; stop waits for both.
func (h *harness) start(t *testing.T, ctx context.Context) (wait func() error) {
	cctx, cancel := context.WithCancel(context.Background())
	coordDone := make(chan error, 1)
	go func() { coordDone <- h.coord.Run(cctx) }()
	runDone := make(chan error, 1)
	go func() { runDone <- h.stream.Run(ctx) }()
	return func() error {
		err := <-runDone
		cancel()
		return errors.Join(err, <-coordDone)
	}
}

func expectedCounts(total, keys int) []string {
	var out []string
	for k := 0; k < keys; k++ {
		n := total / keys
		if k < total%keys {
			n++
		}
		if n > 0 {
			out = append(out, fmt.Sprintf("k%d=%d", k, n))
		}
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ---- tests ----

// A run stopped in the middle, after a checkpoint, and restored with another
// thread_num ends with the same counts as a run without interruption.
func TestCheckpointRestoreRescale(t *testing.T) {
	const total, keys = 20000, 500
	want := expectedCounts(total, keys)
	for _, threads := range [][2]int{{4, 1}, {4, 2}, {4, 8}, {1, 4}} {
		t.Run(fmt.Sprintf("%d-to-%d", threads[0], threads[1]), func(t *testing.T) {
			store, err := storage.NewLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			in := &seqInput{total: total, batch: 100, keys: keys, pauseAt: 7300, paused: make(chan struct{}), release: make(chan struct{})}
			h := newHarness(t, store, in, threads[0], checkpoint.Config{})
			if _, err := h.coord.Restore(context.Background(), 0, false); err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			wait := h.start(t, ctx)
			<-in.paused
			id, err := h.coord.CreateCheckpoint(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// Crash: the process dies without a final checkpoint. Simulate by
			// stopping without one: the restored run must not see later data.
			stop()
			close(in.release)
			if err := wait(); err != nil {
				t.Fatal(err)
			}

			in2 := &seqInput{total: total, batch: 100, keys: keys}
			h2 := newHarness(t, store, in2, threads[1], checkpoint.Config{})
			m, err := h2.coord.Restore(context.Background(), id, false)
			if err != nil {
				t.Fatal(err)
			}
			// The barrier is cut after the last batch the source passed on:
			// the one the paused reader holds may come before or after it.
			if m == nil || m.ID != id || (in2.next != 7300 && in2.next != 7200) {
				t.Fatalf("restored checkpoint %v, input at %d; want checkpoint %d at 7200 or 7300", m != nil, in2.next, id)
			}
			if err := h2.start(t, context.Background())(); err != nil {
				t.Fatal(err)
			}
			if got := h2.out.sorted(); !equal(got, want) {
				t.Fatalf("counts after restore differ from an uninterrupted run:\n got %d keys %v...\nwant %d keys %v...", len(got), got[:3], len(want), want[:3])
			}
		})
	}
}

func TestIncrementalCheckpointsAndRetention(t *testing.T) {
	dir := t.TempDir()
	store, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	const keys = 20000
	// Pause after every key has been counted once; then checkpoint, let a
	// little more through (1% of keys), checkpoint again. (The barrier may
	// be cut one batch before the pause: up to 2% of keys change.)
	in := &seqInput{total: keys + 200, batch: 200, keys: keys, pauseAt: keys, paused: make(chan struct{}), release: make(chan struct{})}
	h := newHarness(t, store, in, 2, checkpoint.Config{Retained: 2})
	if _, err := h.coord.Restore(context.Background(), 0, false); err != nil {
		t.Fatal(err)
	}
	wait := h.start(t, context.Background())
	<-in.paused
	id1, err := h.coord.CreateCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	close(in.release)
	if err := wait(); err != nil { // ends with a final checkpoint
		t.Fatal(err)
	}
	good, bad, err := h.coord.List(context.Background())
	if err != nil || len(bad) != 0 {
		t.Fatalf("list: %v %v", err, bad)
	}
	if len(good) != 2 || good[1].ID != id1 {
		t.Fatalf("manifests %d, want the 2 retained", len(good))
	}
	full, incr := good[1], good[0]
	if full.IncrementalBytes != full.FullBytes || full.FullBytes == 0 {
		t.Fatalf("first checkpoint wrote %d of %d bytes", full.IncrementalBytes, full.FullBytes)
	}
	if ratio := float64(incr.IncrementalBytes) / float64(full.FullBytes); ratio > 0.05 {
		t.Fatalf("incremental checkpoint wrote %d bytes, %.1f%% of the full %d (1%% of keys changed)", incr.IncrementalBytes, 100*ratio, full.FullBytes)
	}
	// Every file on disk is referenced by a retained manifest and vice versa.
	referenced := map[string]bool{}
	for _, m := range good {
		for _, f := range m.Files() {
			referenced[f.Name] = true
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "p", "s", "shared"))
	if len(entries) != len(referenced) {
		t.Fatalf("%d shared files on disk, %d referenced", len(entries), len(referenced))
	}
}

func TestCorruptCheckpointFallsBackToPrevious(t *testing.T) {
	const total, keys = 3000, 100
	for _, victim := range []string{"manifest-truncate", "manifest-flip", "full-flip", "delta-truncate", "delta-missing"} {
		t.Run(victim, func(t *testing.T) {
			dir := t.TempDir()
			store, _ := storage.NewLocal(dir)
			in := &seqInput{total: total, batch: 100, keys: keys, pauseAt: 1000, paused: make(chan struct{}), release: make(chan struct{})}
			cfg := checkpoint.Config{Retained: 5}
			if strings.HasPrefix(victim, "full") {
				cfg.FullEvery = 1 // every checkpoint writes its own full files
			}
			h := newHarness(t, store, in, 2, cfg)
			if _, err := h.coord.Restore(context.Background(), 0, false); err != nil {
				t.Fatal(err)
			}
			wait := h.start(t, context.Background())
			<-in.paused
			id1, err := h.coord.CreateCheckpoint(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			close(in.release)
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			good, _, _ := h.coord.List(context.Background())
			newest := good[0]
			root := filepath.Join(dir, "p", "s")
			var target string
			switch {
			case strings.HasPrefix(victim, "manifest"):
				target = filepath.Join(root, filepath.FromSlash(checkpoint.ManifestName(newest.ID)))
			case strings.HasPrefix(victim, "full"):
				target = filepath.Join(root, filepath.FromSlash(firstOfKind(newest, "full", good[1])))
			default:
				target = filepath.Join(root, filepath.FromSlash(firstOfKind(newest, "delta", nil)))
			}
			data, err := os.ReadFile(target)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case strings.HasSuffix(victim, "truncate"):
				data = data[:len(data)/2]
			case strings.HasSuffix(victim, "flip"):
				data[len(data)/2] ^= 0x40
			}
			if strings.HasSuffix(victim, "missing") {
				err = os.Remove(target)
			} else {
				err = os.WriteFile(target, data, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			in2 := &seqInput{total: total, batch: 100, keys: keys}
			h2 := newHarness(t, store, in2, 3, checkpoint.Config{})
			m, err := h2.coord.Restore(context.Background(), 0, false)
			if err != nil {
				t.Fatal(err)
			}
			if m == nil || m.ID != id1 || (in2.next != 1000 && in2.next != 900) {
				t.Fatalf("restored %v at %d; want the previous checkpoint %d at 900 or 1000", m != nil, in2.next, id1)
			}
			if err := h2.start(t, context.Background())(); err != nil {
				t.Fatal(err)
			}
			if got, want := h2.out.sorted(), expectedCounts(total, keys); !equal(got, want) {
				t.Fatalf("counts after fallback differ")
			}
		})
	}
}

// firstOfKind returns a file of the given kind that m has and not (when
// set) references.
func firstOfKind(m *checkpoint.Manifest, kind string, not *checkpoint.Manifest) string {
	skip := map[string]bool{}
	if not != nil {
		for _, f := range not.Files() {
			skip[f.Name] = true
		}
	}
	for _, f := range m.Files() {
		if f.Kind == kind && !skip[f.Name] {
			return f.Name
		}
	}
	for _, f := range m.Files() {
		if f.Kind == kind {
			return f.Name
		}
	}
	panic("no file of kind " + kind)
}

func TestNoUsableCheckpointFailsUnlessFresh(t *testing.T) {
	dir := t.TempDir()
	store, _ := storage.NewLocal(dir)
	name := "p/s/" + checkpoint.ManifestName(3)
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, store, &seqInput{total: 10, batch: 5, keys: 2}, 1, checkpoint.Config{})
	if _, err := h.coord.Restore(context.Background(), 0, false); !errors.Is(err, checkpoint.ErrNoUsableCheckpoint) {
		t.Fatalf("Restore = %v, want ErrNoUsableCheckpoint", err)
	}
	if m, err := h.coord.Restore(context.Background(), 0, true); err != nil || m != nil {
		t.Fatalf("fresh Restore = %v, %v", m, err)
	}
	if err := h.start(t, context.Background())(); err != nil {
		t.Fatal(err)
	}
	// New checkpoint ids continue after the corrupt one.
	if id := h.coord.LastCompleted(); id != 4 {
		t.Fatalf("final checkpoint id %d, want 4", id)
	}
}

// blockingOut blocks writes until released.
type blockingOut struct {
	memOut
	release chan struct{}
	entered chan struct{} // closed by the first Write
	once    sync.Once
}

func (o *blockingOut) Write(ctx context.Context, b *message.Batch) error {
	o.once.Do(func() { close(o.entered) })
	select {
	case <-o.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return o.memOut.Write(ctx, b)
}

func TestCheckpointTimeoutThenNextSucceeds(t *testing.T) {
	store, _ := storage.NewLocal(t.TempDir())
	in := &seqInput{total: 1 << 40, batch: 10, keys: 10}
	h := &harness{}
	out := &blockingOut{release: make(chan struct{}), entered: make(chan struct{})}
	reg := metrics.New()
	// A stateless stream whose output blocks: the barrier cannot reach the
	// sink, so the checkpoint times out.
	sc := streamConfig(in, out, 1)
	sc.Pipeline.Processors = nil
	s, err := engine.NewStream(sc, engine.Options{Metrics: reg,
		OnBarrier: func(ctx context.Context, st *engine.Stream, b *engine.Barrier) { h.coord.OnBarrier(ctx, st, b) }})
	if err != nil {
		t.Fatal(err)
	}
	h.stream = s
	h.coord, err = checkpoint.New(checkpoint.Config{Pipeline: "p", Stream: "s", Manual: true, Timeout: 100 * time.Millisecond, TolerableFailures: 5}, store, s, reg, nil, checkpoint.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.coord.Restore(context.Background(), 0, false); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	wait := h.start(t, ctx)
	<-out.entered
	_, err = h.coord.CreateCheckpoint(context.Background())
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("CreateCheckpoint with a blocked output = %v, want a timeout", err)
	}
	close(out.release)
	id, err := h.coord.CreateCheckpoint(context.Background())
	if err != nil {
		t.Fatalf("the next checkpoint failed: %v", err)
	}
	if id != 2 {
		t.Fatalf("id %d, want 2", id)
	}
	good, _, _ := h.coord.List(context.Background())
	if len(good) != 1 || good[0].ID != 2 {
		t.Fatalf("manifests: %d, want only checkpoint 2", len(good))
	}
	stop()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// A checkpoint taken after a restore but before the first batch keeps the
// restored position (not none, which would replay the input from its
// start after the next restore).
func TestCheckpointBeforeFirstBatchKeepsRestoredPosition(t *testing.T) {
	store, _ := storage.NewLocal(t.TempDir())
	in := &seqInput{total: 1000, batch: 100, keys: 10, pauseAt: 500, paused: make(chan struct{}), release: make(chan struct{})}
	h := newHarness(t, store, in, 1, checkpoint.Config{})
	if _, err := h.coord.Restore(context.Background(), 0, false); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	wait := h.start(t, ctx)
	<-in.paused
	id, err := h.coord.CreateCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stop()
	close(in.release)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	// Second process: restored, and paused before reading anything.
	in2 := &seqInput{total: 1000, batch: 100, keys: 10, paused: make(chan struct{}), release: make(chan struct{})}
	h2 := newHarness(t, store, in2, 1, checkpoint.Config{})
	m, err := h2.coord.Restore(context.Background(), id, false)
	if err != nil || m == nil {
		t.Fatal(m, err)
	}
	in2.pauseAt = in2.next // pause at once
	ctx2, stop2 := context.WithCancel(context.Background())
	wait2 := h2.start(t, ctx2)
	<-in2.paused
	id2, err := h2.coord.CreateCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stop2()
	close(in2.release)
	if err := wait2(); err != nil {
		t.Fatal(err)
	}
	good, _, _ := h2.coord.List(context.Background())
	for _, g := range good {
		if g.ID == id2 && string(g.Position) != string(m.Position) {
			t.Fatalf("checkpoint %d has position %x, want the restored %x", id2, g.Position, m.Position)
		}
	}
}
