package checkpoint_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-stream/weir/checkpoint"
	"github.com/weir-stream/weir/checkpoint/storage"
	"github.com/weir-stream/weir/engine"
	"github.com/weir-stream/weir/metrics"
	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
)

// faultStore wraps a storage: Puts can fail or block.
type faultStore struct {
	storage.Storage
	failPuts atomic.Bool
	block    atomic.Pointer[chan struct{}]
	puts     atomic.Int64
}

func (f *faultStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	f.puts.Add(1)
	if ch := f.block.Load(); ch != nil {
		select {
		case <-*ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.failPuts.Load() {
		return &storage.Error{Op: "put", Location: name, Transient: true, Err: errors.New("injected outage")}
	}
	return f.Storage.Put(ctx, name, r, size)
}

// faultBackend fails Snapshot on demand (a failing task).
type faultBackend struct {
	kv.Backend
	fail *atomic.Bool
}

func (b faultBackend) Snapshot() (kv.Snapshot, error) {
	if b.fail.Load() {
		return nil, errors.New("injected snapshot failure")
	}
	return b.Backend.Snapshot()
}

// TestCoordinatorFailures is a table of what can go wrong around one
// checkpoint; in every case that checkpoint fails, the stream goes on, the
// next checkpoint succeeds, and a restore afterwards gives exact counts.
func TestCoordinatorFailures(t *testing.T) {
	cases := []struct {
		name    string
		inject  func(fs *faultStore, snapFail *atomic.Bool)
		heal    func(fs *faultStore, snapFail *atomic.Bool)
		wantErr string
	}{
		{"failing store", func(fs *faultStore, _ *atomic.Bool) { fs.failPuts.Store(true) },
			func(fs *faultStore, _ *atomic.Bool) { fs.failPuts.Store(false) }, "injected outage"},
		{"failing task", func(_ *faultStore, f *atomic.Bool) { f.Store(true) },
			func(_ *faultStore, f *atomic.Bool) { f.Store(false) }, "injected snapshot failure"},
		{"store hangs past the timeout", func(fs *faultStore, _ *atomic.Bool) { ch := make(chan struct{}); fs.block.Store(&ch) },
			func(fs *faultStore, _ *atomic.Bool) { ch := fs.block.Swap(nil); close(*ch) }, "timed out"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			local, _ := storage.NewLocal(t.TempDir())
			fs := &faultStore{Storage: local}
			var snapFail atomic.Bool
			const keys = 300
			in := &seqInput{total: 1 << 40, batch: 50, keys: keys}
			out := &memOut{}
			h := &harness{out: out}
			reg := metrics.New()
			opts := engine.Options{Metrics: reg,
				OnBarrier:       func(ctx context.Context, s *engine.Stream, b *engine.Barrier) { h.coord.OnBarrier(ctx, s, b) },
				FinalCheckpoint: func(s *engine.Stream) uint64 { return h.coord.FinalCheckpoint(s) },
				NewBackend: func(_, _ string, _ int, cfg kv.Config) (kv.Backend, error) {
					b, err := memory.New(cfg)
					return faultBackend{Backend: b, fail: &snapFail}, err
				},
			}
			s, err := engine.NewStream(streamConfig(in, out, 2), opts)
			if err != nil {
				t.Fatal(err)
			}
			h.stream = s
			h.coord, err = checkpoint.New(checkpoint.Config{Pipeline: "p", Stream: "s", Manual: true, Timeout: 3 * time.Second, TolerableFailures: 5},
				fs, s, reg, nil, checkpoint.Hooks{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.coord.Restore(context.Background(), 0, false); err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			wait := h.start(t, ctx)
			if _, err := h.coord.CreateCheckpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			tc.inject(fs, &snapFail)
			_, err = h.coord.CreateCheckpoint(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("checkpoint under fault = %v, want %q", err, tc.wantErr)
			}
			tc.heal(fs, &snapFail)
			if _, err := h.coord.CreateCheckpoint(context.Background()); err != nil {
				t.Fatalf("checkpoint after healing: %v", err)
			}
			stop()
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			// The last checkpoint (the final one, at the stop) restores the
			// exact counts of everything read.
			read := in.next
			in2 := &seqInput{total: read, batch: 50, keys: keys}
			h2 := newHarness(t, local, in2, 3, checkpoint.Config{})
			if _, err := h2.coord.Restore(context.Background(), 0, false); err != nil {
				t.Fatal(err)
			}
			if err := h2.start(t, context.Background())(); err != nil {
				t.Fatal(err)
			}
			if got, want := h2.out.sorted(), expectedCounts(read, keys); !equal(got, want) {
				t.Fatalf("counts after restore differ from the %d records read", read)
			}
		})
	}
}

// Overlapping triggers: many CreateCheckpoint calls at once all complete,
// one checkpoint at a time.
func TestOverlappingTriggers(t *testing.T) {
	store, _ := storage.NewLocal(t.TempDir())
	in := &seqInput{total: 1 << 40, batch: 50, keys: 100}
	h := newHarness(t, store, in, 2, checkpoint.Config{Retained: 100})
	if _, err := h.coord.Restore(context.Background(), 0, false); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	wait := h.start(t, ctx)
	var wg sync.WaitGroup
	ids := make([]uint64, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Add(1)
		go func() { defer wg.Done(); ids[i], errs[i] = h.coord.CreateCheckpoint(context.Background()) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("trigger %d: %v", i, err)
		}
	}
	stop()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	good, bad, err := h.coord.List(context.Background())
	if err != nil || len(bad) > 0 {
		t.Fatal(err, bad)
	}
	for i := 1; i < len(good); i++ {
		if good[i].ID >= good[i-1].ID {
			t.Fatalf("manifest ids not increasing: %d then %d", good[i-1].ID, good[i].ID)
		}
	}
}

// Shutdown during a checkpoint: the stop's final checkpoint supersedes the
// one whose upload hangs, and completes once storage answers.
func TestShutdownDuringCheckpoint(t *testing.T) {
	local, _ := storage.NewLocal(t.TempDir())
	fs := &faultStore{Storage: local}
	in := &seqInput{total: 1 << 40, batch: 50, keys: 100}
	out := &memOut{}
	h := newHarnessFromConfig(t, fs, streamConfig(in, out, 2), checkpoint.Config{Timeout: 30 * time.Second})
	if _, err := h.coord.Restore(context.Background(), 0, false); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	wait := h.start(t, ctx)
	ch := make(chan struct{})
	fs.block.Store(&ch)
	errc := make(chan error, 1)
	go func() { _, err := h.coord.CreateCheckpoint(context.Background()); errc <- err }()
	for fs.puts.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	stop()
	time.AfterFunc(50*time.Millisecond, func() { close(ch) })
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	<-errc // superseded or completed: either is fine
	read := in.next
	in2 := &seqInput{total: read, batch: 50, keys: 100}
	h2 := newHarness(t, local, in2, 1, checkpoint.Config{})
	m, err := h2.coord.Restore(context.Background(), 0, false)
	if err != nil || m == nil {
		t.Fatalf("restore after a shutdown during a checkpoint: %v %v", m, err)
	}
	if err := h2.start(t, context.Background())(); err != nil {
		t.Fatal(err)
	}
	if got, want := h2.out.sorted(), expectedCounts(read, 100); !equal(got, want) {
		t.Fatal("counts differ after a shutdown during a checkpoint")
	}
}
