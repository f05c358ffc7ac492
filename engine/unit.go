package engine

import (
	"errors"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state/kv"
)

// kindTick is the engine's own control event: a processing-time tick that
// makes timed flushers (the batch processor) and tickers (processing-time
// windows) act. It travels like any control event so that order is kept.
const kindTick message.Kind = 200

// unit is what travels on the engine's channels: one input batch (or one
// control event) and, after the workers, everything derived from it.
type unit struct {
	kind message.Kind
	ctrl message.Event
	// batches are the data (before processing, the input's one batch;
	// afterwards the results, error batches included).
	batches []*message.Batch
	// acks belong to this point of the stream but ride on no batch.
	acks []message.AckFunc
	// start is when the input returned the batch (unix nanoseconds).
	start int64
	// pos is the source position a barrier was taken at.
	pos []byte
	// snaps are the state snapshots taken for a barrier, gathered as the
	// barrier travels to the sink.
	snaps []OperatorSnapshot
	// err is set when a snapshot for a barrier failed.
	err error
	// wm is the stream's event-time watermark after this data, set by a
	// keyed exchange whose processor is a component.Watermarker (hasWM).
	wm    int64
	hasWM bool
}

func (u *unit) isControl() bool { return u.kind != message.KindData }

// controlCopy returns a copy of a control unit to broadcast to a worker.
func (u *unit) controlCopy() *unit {
	return &unit{kind: u.kind, ctrl: u.ctrl, pos: u.pos}
}

// merge adds what another worker attached to the same control event.
func (u *unit) merge(v *unit) {
	u.batches = append(u.batches, v.batches...)
	u.acks = append(u.acks, v.acks...)
	u.snaps = append(u.snaps, v.snaps...)
	u.err = errors.Join(u.err, v.err)
}

// OperatorSnapshot is the frozen state of one stateful processor instance
// at a checkpoint barrier.
type OperatorSnapshot struct {
	// Operator identifies the processor in the stream ("processor.2.aggregate").
	Operator string
	// Worker is the index of the instance; KeyGroups the key groups it owns.
	Worker    int
	KeyGroups kv.KeyGroupRange
	Snapshot  kv.Snapshot
	// Backend took the snapshot; call ConfirmSnapshot on it once the
	// checkpoint is complete (incremental snapshots are relative to it).
	Backend kv.Backend
}

// Barrier is a checkpoint barrier that has reached the sink: every record
// before it has been written (and pre-committed), and nothing after it.
type Barrier struct {
	ID uint64
	// Position is the source position at the barrier (nil for inputs that
	// have none).
	Position []byte
	// Snapshots are the frozen states of every stateful processor instance.
	Snapshots []OperatorSnapshot
	// Sinks are the pre-commit handles of the two-phase-commit outputs, by
	// output label ("output", "error_output").
	Sinks map[string][]byte
	// Err is set when an operator failed to snapshot or an output to
	// pre-commit: the checkpoint fails.
	Err error
}

// Release releases every snapshot of the barrier.
func (b *Barrier) Release() {
	for _, s := range b.Snapshots {
		s.Snapshot.Release()
	}
}
