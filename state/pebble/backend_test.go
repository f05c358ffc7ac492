package pebble_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/weir-stream/weir/state"
	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/pebble"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	b, err := pebble.Open(dir, pebble.Options{Config: kv.Config{MaxKeyGroups: 16}})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := state.NewKeyedContext(b)
	v, _ := state.NewValueState[string](c, "v")
	for i := range 10 {
		_ = c.SetCurrentKey([]byte(fmt.Sprint(i)))
		_ = v.Update("x")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pebble.Open(dir, pebble.Options{Config: kv.Config{MaxKeyGroups: 32}}); !errors.Is(err, kv.ErrKeyGroupRange) {
		t.Fatalf("reopen with other key groups: %v", err)
	}
	b, err = pebble.Open(dir, pebble.Options{Config: kv.Config{MaxKeyGroups: 16}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if st := b.Stats(); st.Keys != 10 {
		t.Fatalf("reopened Keys = %d", st.Keys)
	}
}

func TestSnapshotAfterClose(t *testing.T) {
	b, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := snap.Entries(0, func(kv.Entry) error { return nil }); !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("Entries after Close: %v", err)
	}
	snap.Release()
	if err := b.Flush(); !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
}

func TestCheckpoint(t *testing.T) {
	b, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, _ := state.NewStore(b, "s")
	_ = s.Put("k", "v")
	dst := filepath.Join(t.TempDir(), "chk")
	if err := b.Checkpoint(dst); err != nil {
		t.Fatal(err)
	}
	b2, err := pebble.Open(dst, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	s2, _ := state.NewStore(b2, "s")
	if v, ok, err := state.GetTyped[string](s2, "k"); err != nil || !ok || v != "v" {
		t.Fatalf("checkpoint copy: %q %v %v", v, ok, err)
	}
}

// TestLargerThanCache writes and reads back a state several times the
// block cache.
func TestLargerThanCache(t *testing.T) {
	var logs bytes.Buffer
	b, err := pebble.Open(t.TempDir(), pebble.Options{
		CacheSize: 1 << 20, MemTableSize: 1 << 20,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, _ := state.NewKeyedContext(b)
	v, _ := state.NewValueState[[]byte](c, "blob")
	val := bytes.Repeat([]byte("x"), 100)
	const n = 50_000 // ~5 MB of values
	for i := range n {
		_ = c.SetCurrentKey([]byte(fmt.Sprint("key", i)))
		if err := v.Update(val); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 {
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = c.Flush()
	for i := 0; i < n; i += 7 {
		_ = c.SetCurrentKey([]byte(fmt.Sprint("key", i)))
		got, ok, err := v.Value()
		if err != nil || !ok || !bytes.Equal(got, val) {
			t.Fatalf("key%d: %v %v", i, ok, err)
		}
	}
	if logs.Len() == 0 {
		t.Fatal("pebble logged nothing to the configured logger")
	}
}
