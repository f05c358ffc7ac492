package state

import (
	"context"
	"testing"

	"github.com/weir-stream/weir/checkpoint/storage"
)

// gateProbe is a participant that records whether a batch could run
// (ProcessBatch take the gate) while it is pre-committed.
type gateProbe struct {
	m        *Manager
	runnable []bool
}

func (p *gateProbe) PreCommit(context.Context, uint64) ([]byte, error) {
	ok := p.m.gate.TryRLock()
	if ok {
		p.m.gate.RUnlock()
	}
	p.runnable = append(p.runnable, ok)
	return nil, nil
}

func (p *gateProbe) Commit(context.Context, uint64, []byte) error  { return nil }
func (p *gateProbe) Abort(context.Context, uint64) error           { return nil }
func (p *gateProbe) Recover(context.Context, uint64, []byte) error { return nil }

// TestPreCommitBetweenBatches: participants are pre-committed at the cut
// of the snapshot, while no batch can run, so that a batch's records and
// its state changes are in the same checkpoint.
func TestPreCommitBetweenBatches(t *testing.T) {
	store, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(ManagerConfig{Checkpoints: CheckpointConfig{Storage: store}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p := &gateProbe{m: m}
	if err := m.RegisterParticipant("probe", p); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateCheckpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(p.runnable) != 1 || p.runnable[0] {
		t.Fatalf("a batch could run during the pre-commit: %v", p.runnable)
	}
}
