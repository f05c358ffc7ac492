package state_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-stream/weir/state"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func managers(t *testing.T) map[string]func(cfg state.ManagerConfig) *state.Manager {
	open := func(kind state.BackendKind) func(cfg state.ManagerConfig) *state.Manager {
		return func(cfg state.ManagerConfig) *state.Manager {
			t.Helper()
			cfg.Backend = kind
			if kind == state.BackendPebble {
				cfg.Dir = t.TempDir()
			}
			m, err := state.NewManager(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Close() })
			return m
		}
	}
	return map[string]func(state.ManagerConfig) *state.Manager{
		"memory": open(state.BackendMemory),
		"pebble": open(state.BackendPebble),
	}
}

func TestManager(t *testing.T) {
	for name, open := range managers(t) {
		t.Run(name, func(t *testing.T) {
			clock := state.NewManualClock(time.Unix(1000, 0))
			m := open(state.ManagerConfig{MaxKeyGroups: 8, DefaultTTL: time.Minute, Clock: clock})
			p3 := m.PartitionedState(3)
			if m.PartitionedState(3) != p3 {
				t.Fatal("PartitionedState returned another store for the same id")
			}
			if err := state.PutTyped(p3, "k", 1); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := m.PartitionedState(4).Get("k"); ok {
				t.Fatal("partitions share keys")
			}
			if err := m.PartitionedState(8).Put("k", 1); !errors.Is(err, state.ErrKeyGroupRange) {
				t.Fatalf("partition 8 of 8: %v", err)
			}
			if err := m.State().Put("global", "g"); err != nil {
				t.Fatal(err)
			}
			if v, ok, err := state.GetTyped[string](m.State(), "global"); err != nil || !ok || v != "g" {
				t.Fatalf("global = %q %v %v", v, ok, err)
			}
			if st := m.Stats(); st.Keys != 2 {
				t.Fatalf("Keys = %d", st.Keys)
			}
			_ = p3.BatchPut("x", 1)
			if st := m.Stats(); st.ActiveTransactions != 1 {
				t.Fatalf("ActiveTransactions = %d", st.ActiveTransactions)
			}
			if err := m.Restore(bytes.NewReader(nil)); !errors.Is(err, state.ErrBatchOpen) {
				t.Fatalf("Restore with a batch open: %v", err)
			}
			_ = p3.AbortBatch()
			// The default TTL applies to Put.
			clock.Advance(time.Minute)
			if _, ok, _ := p3.Get("k"); ok {
				t.Fatal("default TTL not applied")
			}
			n, err := m.CleanupExpiredState(context.Background())
			if err != nil || n != 2 {
				t.Fatalf("CleanupExpiredState = %d, %v", n, err)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if err := m.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if err := p3.Put("k", 1); !errors.Is(err, state.ErrClosed) {
				t.Fatalf("Put after Close: %v", err)
			}
			if _, _, err := p3.Get("k"); !errors.Is(err, state.ErrClosed) {
				t.Fatalf("Get after Close: %v", err)
			}
			if _, err := m.Snapshot(); !errors.Is(err, state.ErrClosed) {
				t.Fatalf("Snapshot after Close: %v", err)
			}
		})
	}
}

// TestManagerSnapshotBatches takes snapshots while batches are committed:
// every snapshot holds whole batches, and restores into a new manager.
func TestManagerSnapshotBatches(t *testing.T) {
	for name, open := range managers(t) {
		t.Run(name, func(t *testing.T) {
			m := open(state.ManagerConfig{MaxKeyGroups: 4})
			s := m.State()
			const keys = 16
			for i := range keys {
				if err := s.Put(fmt.Sprint("k", i), 0); err != nil {
					t.Fatal(err)
				}
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := 1; ; b++ {
					select {
					case <-stop:
						return
					default:
					}
					for i := range keys {
						_ = s.BatchPut(fmt.Sprint("k", i), b)
					}
					if err := s.CommitBatch(); err != nil {
						t.Error(err)
						return
					}
				}
			}()
			var last map[int][]byte
			for range 20 {
				snap, err := m.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				files := map[int][]byte{}
				values := map[string]bool{}
				for kg := range 4 {
					var buf bytes.Buffer
					if err := state.WriteKeyGroup(&buf, snap, kg); err != nil {
						t.Fatal(err)
					}
					files[kg] = buf.Bytes()
					_, entries, err := state.DecodeEntries(bytes.NewReader(buf.Bytes()))
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range entries {
						values[fmt.Sprintf("%x", e.Value)] = true
					}
				}
				snap.Release()
				if len(values) != 1 {
					t.Fatalf("snapshot holds part of a batch: %d distinct values", len(values))
				}
				last = files
			}
			close(stop)
			wg.Wait()

			m2 := open(state.ManagerConfig{MaxKeyGroups: 4})
			for kg := range 4 {
				if err := m2.Restore(bytes.NewReader(last[kg])); err != nil {
					t.Fatal(err)
				}
			}
			v0, ok, err := state.GetTyped[int](m2.State(), "k0")
			if err != nil || !ok {
				t.Fatalf("restored k0: %v %v", ok, err)
			}
			for i := range keys {
				if v, _, _ := state.GetTyped[int](m2.State(), fmt.Sprint("k", i)); v != v0 {
					t.Fatalf("restored k%d = %d, k0 = %d", i, v, v0)
				}
			}
			if st := m2.Stats(); st.Keys != keys {
				t.Fatalf("restored Keys = %d", st.Keys)
			}
		})
	}
}

func TestParseBackendKind(t *testing.T) {
	for in, want := range map[string]state.BackendKind{
		"Memory": state.BackendMemory, "hybrid": state.BackendMemory, "": state.BackendMemory,
		"S3": state.BackendPebble, "Pebble": state.BackendPebble,
	} {
		if got, err := state.ParseBackendKind(in); err != nil || got != want {
			t.Errorf("ParseBackendKind(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := state.ParseBackendKind("redis"); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("ParseBackendKind(redis): %v", err)
	}
	if _, err := state.NewManager(state.ManagerConfig{Backend: state.BackendPebble}); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("pebble manager without a directory: %v", err)
	}
}

func TestKeyedContextRejectsForeignBackend(t *testing.T) {
	if _, err := state.NewKeyedContext(fakeBackend{}); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("NewKeyedContext(fake) = %v", err)
	}
}

type fakeBackend struct{ state.Backend }
