package state_test

import (
	"context"
	"fmt"
	"time"

	"github.com/weir-stream/weir/state"
)

type SessionInfo struct {
	ID     string `cbor:"id"`
	Active bool   `cbor:"active"`
}

// The guide's basic state operations.
func ExampleNewMemoryState() {
	s := state.NewMemoryState()

	// Store and retrieve typed values.
	_ = state.PutTyped(s, "user_count", uint64(42))
	_ = state.PutTyped(s, "session_data", SessionInfo{ID: "123", Active: true})

	count, ok, _ := state.GetTyped[uint64](s, "user_count")
	fmt.Println(count, ok)
	session, _, _ := state.GetTyped[SessionInfo](s, "session_data")
	fmt.Printf("%+v\n", session)

	// Reading a value as a type it cannot be converted to fails.
	_, _, err := state.GetTyped[string](s, "user_count")
	fmt.Println(err)

	_ = s.Remove("user_count")
	_, ok, _ = state.GetTyped[uint64](s, "user_count")
	fmt.Println(ok)
	_ = s.Clear()
	fmt.Println(s.Stats().Keys)
	// Output:
	// 42 true
	// {ID:123 Active:true}
	// state: get "user_count": type mismatch: uint64 cannot be read as string
	// false
	// 0
}

// Time to live: entries expire in processing time; here a manual clock
// stands in for the wall clock.
func ExampleMemoryState_PutWithTTL() {
	clock := state.NewManualClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s := state.NewMemoryState(state.WithClock(clock))

	_ = s.PutWithTTL("temp_data", "scratch", time.Hour)
	_ = s.Put("config", "kept")

	clock.Advance(59 * time.Minute)
	_, ok, _ := s.Get("temp_data")
	fmt.Println("after 59m:", ok)

	clock.Advance(time.Minute)
	_, ok, _ = s.Get("temp_data")
	fmt.Println("after 1h:", ok)

	// Regular cleanup removes what expired.
	fmt.Println("removed:", s.CleanupExpiredState())
	fmt.Println("keys:", s.Stats().Keys)
	// Output:
	// after 59m: true
	// after 1h: false
	// removed: 1
	// keys: 1
}

// Batch updates are all or nothing: readers see none of the batch until
// CommitBatch, then all of it.
func ExampleStore_batch() {
	s := state.NewMemoryState()
	updates := map[string]int{"a": 1, "b": 2, "c": 3}
	for _, k := range []string{"a", "b", "c"} {
		_ = s.BatchPut(k, updates[k])
	}
	fmt.Println("open batches:", s.Stats().ActiveTransactions)
	_, ok, _ := s.Get("a")
	fmt.Println("visible before commit:", ok)

	_ = s.CommitBatch()
	b, _, _ := state.GetTyped[int](s, "b")
	fmt.Println("b =", b)

	_ = s.BatchPut("d", 4)
	_ = s.AbortBatch()
	_, ok, _ = s.Get("d")
	fmt.Println("aborted write visible:", ok)
	// Output:
	// open batches: 1
	// visible before commit: false
	// b = 2
	// aborted write visible: false
}

// State partitioning: each partition is a key group of the manager's
// state.
func ExampleManager_PartitionedState() {
	m, err := state.NewManager(state.ManagerConfig{Backend: state.BackendMemory, MaxKeyGroups: 16})
	if err != nil {
		panic(err)
	}
	defer m.Close()

	const partitions = 4
	for _, key := range []string{"alice", "bob", "carol", "dave"} {
		p := state.KeyGroupOf([]byte(key), partitions) // hash_key(key) % num_partitions
		_ = state.PutTyped(m.PartitionedState(p), key, len(key))
	}
	p := state.KeyGroupOf([]byte("carol"), partitions)
	n, ok, _ := state.GetTyped[int](m.PartitionedState(p), "carol")
	fmt.Println(n, ok)

	removed, _ := m.CleanupExpiredState(context.Background())
	st := m.Stats()
	fmt.Println("keys:", st.Keys, "removed:", removed, "active transactions:", st.ActiveTransactions)
	// Output:
	// 5 true
	// keys: 4 removed: 0 active transactions: 0
}

// Keyed state in an operator: a running count per word.
func ExampleValueState() {
	backend, _ := state.NewBackend(state.BackendConfig{Kind: state.BackendMemory})
	defer backend.Close()
	ctx, _ := state.NewKeyedContext(backend)
	counts, _ := state.NewValueState[int64](ctx, "count")

	for _, word := range []string{"to", "be", "or", "not", "to", "be"} {
		_ = ctx.SetCurrentKey([]byte(word))
		n, _, _ := counts.Value()
		_ = counts.Update(n + 1)
		fmt.Printf("%s=%d ", word, n+1)
	}
	fmt.Println()
	// Output:
	// to=1 be=1 or=1 not=1 to=2 be=2
}
