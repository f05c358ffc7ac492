package state_test

import (
	"context"
	"fmt"
	"os"

	"github.com/weir-stream/weir/checkpoint/storage"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state"
)

// The guide's ExactlyOnceProcessor: a word count that a replay after a
// crash does not count twice. The first process checkpoints after batch 2
// and crashes after batch 3; the second recovers and its source replays
// from the start, as an at-least-once source would.
func ExampleNewExactlyOnceProcessor() {
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
	cfg := state.ManagerConfig{Checkpoints: state.CheckpointConfig{Storage: store}}
	input := []*message.Batch{
		message.FromStrings("to", "be"),
		message.FromStrings("or", "not"),
		message.FromStrings("to", "be"),
	}
	wordCount := func(m *state.Manager) state.Processor {
		return state.ProcessorFunc(func(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
			s := m.State()
			words := b.Values()
			for i := range words.Len() {
				n, _, err := state.GetTyped[int](s, words.String(i))
				if err != nil {
					return nil, err
				}
				if err := s.Put(words.String(i), n+1); err != nil {
					return nil, err
				}
			}
			return nil, nil
		})
	}

	m, err := state.NewManager(cfg)
	if err != nil {
		panic(err)
	}
	processor := state.NewExactlyOnceProcessor(wordCount(m), m, "word_count_operator")
	for i, b := range input {
		seq := uint64(i + 1)
		if _, err := processor.ProcessAt(ctx, seq, b); err != nil {
			panic(err)
		}
		if seq == 2 {
			id, err := m.CreateCheckpoint(ctx)
			fmt.Println("checkpoint:", id, err)
		}
	}
	// Crash: batch 3 was counted, but is in no checkpoint.
	_ = m.Close()

	m, err = state.NewManager(cfg)
	if err != nil {
		panic(err)
	}
	defer m.Close()
	id, ok, err := m.RecoverFromLatestCheckpoint(ctx)
	fmt.Println("recovered:", id, ok, err)
	processor = state.NewExactlyOnceProcessor(wordCount(m), m, "word_count_operator")
	seq, _, _ := processor.Seq()
	fmt.Println("last batch applied:", seq)
	for i, b := range input { // the source replays everything
		if _, err := processor.ProcessAt(ctx, uint64(i+1), b); err != nil {
			panic(err)
		}
	}
	fmt.Println("skipped:", processor.Skipped())
	for _, w := range []string{"to", "be", "or", "not"} {
		n, _, _ := state.GetTyped[int](m.State(), w)
		fmt.Printf("%s=%d\n", w, n)
	}
	// Output:
	// checkpoint: 1 <nil>
	// recovered: 1 true <nil>
	// last batch applied: 2
	// skipped: 2
	// to=2
	// be=2
	// or=1
	// not=1
}

// The guide's TwoPhaseCommitOutput: records become visible when the
// checkpoint that holds their batch completes; after a crash, what was
// written since the last checkpoint is aborted, and the replay writes it
// again. The output here is an in-memory transactional ledger (the tests'
// component.Committer); a kafka or file output with exactly_once: true is
// used the same way.
func ExampleNewTwoPhaseCommitOutput() {
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
	cfg := state.ManagerConfig{Checkpoints: state.CheckpointConfig{Storage: store}}
	topic := newLedger() // what readers of the output see survives the crash
	input := []*message.Batch{
		message.FromStrings("a", "b"),
		message.FromStrings("c"),
		message.FromStrings("d"),
	}

	// run processes input from the recovered position to crashAt, with a
	// checkpoint after batch checkpointAt (0: none).
	run := func(checkpointAt, crashAt int) {
		m, err := state.NewManager(cfg)
		if err != nil {
			panic(err)
		}
		defer m.Close()
		output, err := state.NewTwoPhaseCommitOutput(newLedgerOutput(topic), m)
		if err != nil {
			panic(err)
		}
		id, _, err := m.RecoverFromLatestCheckpoint(ctx) // commits checkpoint id's records, aborts later ones
		if err != nil {
			panic(err)
		}
		if err := output.Connect(ctx); err != nil {
			panic(err)
		}
		identity := state.ProcessorFunc(func(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
			return []*message.Batch{b}, nil
		})
		processor := state.NewExactlyOnceProcessor(identity, m, "pass")
		seq, _, _ := processor.Seq()
		fmt.Printf("start: checkpoint %d, resume after batch %d, visible %q\n", id, seq, topic.Visible())
		for i := int(seq); i < crashAt; i++ {
			outs, err := processor.ProcessAt(ctx, uint64(i+1), input[i])
			if err != nil {
				panic(err)
			}
			for _, o := range outs {
				if err := output.Write(ctx, o); err != nil {
					panic(err)
				}
			}
			if i+1 == checkpointAt {
				if _, err := m.CreateCheckpoint(ctx); err != nil {
					panic(err)
				}
				fmt.Printf("checkpoint after batch %d: visible %q\n", i+1, topic.Visible())
			}
		}
		fmt.Printf("stop: visible %q, %d pending\n", topic.Visible(), topic.Pending())
	}
	run(1, 2)                   // crashes after batch 2: "c" is written but not committed
	run(len(input), len(input)) // recovers, writes "c" and "d" again
	// Output:
	// start: checkpoint 0, resume after batch 0, visible []
	// checkpoint after batch 1: visible ["a" "b"]
	// stop: visible ["a" "b"], 1 pending
	// start: checkpoint 1, resume after batch 1, visible ["a" "b"]
	// checkpoint after batch 3: visible ["a" "b" "c" "d"]
	// stop: visible ["a" "b" "c" "d"], 0 pending
}
