package state_test

import (
	"context"
	"fmt"
	"os"

	"github.com/weir-stream/weir/checkpoint/storage"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state"
)

// The guide's EnhancedStateManager flow: state in a manager, checkpoints
// to a storage (here a local directory; storage.NewS3 for S3), and
// recovery from the latest checkpoint after a restart.
func ExampleManager_CreateCheckpoint() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "weir-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store, err := storage.NewLocal(dir)
	if err != nil {
		panic(err)
	}
	cfg := state.ManagerConfig{
		Backend: state.BackendMemory,
		Checkpoints: state.CheckpointConfig{
			Storage:  store,
			Prefix:   "production/checkpoints",
			Retained: 10,
		},
	}

	m, err := state.NewManager(cfg)
	if err != nil {
		panic(err)
	}
	_ = state.PutTyped(m.State(), "user_count", uint64(42))
	_ = state.PutTyped(m.State(), "session_data", SessionInfo{ID: "123", Active: true})
	id, err := m.CreateCheckpoint(ctx)
	fmt.Println("checkpoint:", id, err)
	_ = state.PutTyped(m.State(), "user_count", uint64(43))
	id, err = m.CreateCheckpoint(ctx) // incremental: only what changed
	fmt.Println("checkpoint:", id, err)
	_ = m.Close()

	// After a restart: a new manager recovers the latest checkpoint.
	m, err = state.NewManager(cfg)
	if err != nil {
		panic(err)
	}
	defer m.Close()
	id, ok, err := m.RecoverFromLatestCheckpoint(ctx)
	fmt.Println("recovered:", id, ok, err)
	count, _, _ := state.GetTyped[uint64](m.State(), "user_count")
	session, _, _ := state.GetTyped[SessionInfo](m.State(), "session_data")
	fmt.Printf("user_count=%d session=%+v\n", count, session)
	// Output:
	// checkpoint: 1 <nil>
	// checkpoint: 2 <nil>
	// recovered: 2 true <nil>
	// user_count=43 session={ID:123 Active:true}
}

// ProcessBatch runs a processor against the manager's state; checkpoints
// never hold part of a batch.
func ExampleManager_ProcessBatch() {
	m, err := state.NewManager(state.ManagerConfig{})
	if err != nil {
		panic(err)
	}
	defer m.Close()
	wordCount := state.ProcessorFunc(func(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
		s := m.State()
		words := b.Values()
		for i := range words.Len() {
			n, _, err := state.GetTyped[int](s, words.String(i))
			if err != nil {
				_ = s.AbortBatch()
				return nil, err
			}
			_ = s.BatchPut(words.String(i), n+1)
		}
		return []*message.Batch{b}, s.CommitBatch() // all or nothing
	})
	ctx := context.Background()
	_, _ = m.ProcessBatch(ctx, message.FromStrings("to", "be", "or"), wordCount)
	_, _ = m.ProcessBatch(ctx, message.FromStrings("not", "to", "be"), wordCount)
	for _, w := range []string{"to", "be", "or", "not"} {
		n, _, _ := state.GetTyped[int](m.State(), w)
		fmt.Printf("%s=%d\n", w, n)
	}
	fmt.Println("active transactions:", m.Stats().ActiveTransactions)
	// Output:
	// to=2
	// be=2
	// or=1
	// not=1
	// active transactions: 0
}
