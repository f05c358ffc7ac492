package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state/kv"
)

// exactlyOncePrefix starts the key, in a Manager's State, under which an
// ExactlyOnceProcessor records the position it last applied.
const exactlyOncePrefix = "__weir_exactly_once/"

// ExactlyOnceProcessor is the guide's ExactlyOnceProcessor: it wraps a
// Processor that keeps its state in a Manager and makes the reprocessing
// of a batch idempotent, so that a source that replays after a crash —
// from the checkpoint's position, or from further back, as an
// at-least-once source does — changes the state exactly once.
//
// Every batch comes with a position: Process takes the batch's Pos (the
// position of the input just after the batch, as inputs set it), ProcessAt
// a sequence number of the caller's (the same as a Pos of the 8 big-endian
// bytes of seq, which is what the file and generate inputs use).
// Positions must increase from batch to batch in bytes.Compare order
// (fixed-width big-endian integers do); for a source whose positions do
// not (Kafka offsets of several partitions), number the batches with
// ProcessAt, or use one processor per partition. The processor records in
// the manager's State, under a key derived from operatorID, the last
// position it applied. A batch at or below that position was applied
// already: it is skipped, and Process returns no batches and no error (its
// acknowledgements are the caller's, as with ProcessBatch: ack it).
//
// Everything runs through Manager.ProcessBatch, so a checkpoint holds the
// processor's state changes of a batch and its recorded position together,
// or neither. After RecoverFromLatestCheckpoint the recorded position is
// the checkpoint's (Position, Seq): resume the source just after it, or
// anywhere before it — batches up to it are skipped. A replay must cut
// batches at the same positions as the first run did (sources that resume
// from a batch's Pos do): a batch straddling the recorded position would be
// applied whole.
//
// The inner processor's contract is ProcessBatch's: it must not call
// ProcessBatch, CreateCheckpoint or RecoverFromLatestCheckpoint, and it
// applies a batch all or nothing (BatchPut, CommitBatch) if a failure must
// not leave part of it; a batch that fails is not recorded, so a retry
// applies it again. Calls of one ExactlyOnceProcessor are serialized; each
// operatorID must belong to one processor at a time, and the recorded
// position lives in State: a Clear of it clears the position too.
type ExactlyOnceProcessor struct {
	p       Processor
	m       *Manager
	id      string
	key     string
	mu      sync.Mutex // serializes batches: check, apply, record
	skipped atomic.Uint64
}

// NewExactlyOnceProcessor wraps processor, whose state lives in manager,
// under operatorID (stable across restarts: it names the recorded
// position in the checkpoints). A nil processor or manager or an empty
// operatorID makes every call fail with ErrInvalid.
func NewExactlyOnceProcessor(processor Processor, manager *Manager, operatorID string) *ExactlyOnceProcessor {
	return &ExactlyOnceProcessor{p: processor, m: manager, id: operatorID, key: exactlyOncePrefix + operatorID}
}

// OperatorID returns the processor's operator id.
func (e *ExactlyOnceProcessor) OperatorID() string { return e.id }

// Process applies b at its position b.Pos through Manager.ProcessBatch and
// returns the inner processor's output, or nothing when b is at or below
// the position last applied (a replay). A batch without a position fails
// with ErrInvalid.
func (e *ExactlyOnceProcessor) Process(ctx context.Context, b *message.Batch) ([]*message.Batch, error) {
	if b == nil || len(b.Pos) == 0 {
		return nil, e.fail(fmt.Errorf("%w: the batch has no position (message.Batch.Pos): use ProcessAt", kv.ErrInvalid))
	}
	return e.process(ctx, b.Pos, b)
}

// ProcessAt is Process with the position given as a sequence number: seq
// must grow by batch (by one or more); a batch with a seq at or below the
// last one applied is skipped.
func (e *ExactlyOnceProcessor) ProcessAt(ctx context.Context, seq uint64, b *message.Batch) ([]*message.Batch, error) {
	return e.process(ctx, binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq), b)
}

func (e *ExactlyOnceProcessor) process(ctx context.Context, pos []byte, b *message.Batch) ([]*message.Batch, error) {
	if e.p == nil || e.m == nil || e.id == "" {
		return nil, e.fail(fmt.Errorf("%w: nil processor or manager, or empty operator id", kv.ErrInvalid))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m.ProcessBatch(ctx, b, ProcessorFunc(func(ctx context.Context, b *message.Batch) ([]*message.Batch, error) {
		s := e.m.State()
		last, ok, err := GetTyped[[]byte](s, e.key)
		if err != nil {
			return nil, fmt.Errorf("exactly-once %s: read position: %w", e.id, err)
		}
		if ok && bytes.Compare(pos, last) <= 0 {
			e.skipped.Add(1)
			return nil, nil
		}
		outs, err := e.p.Process(ctx, b)
		if err != nil {
			return nil, err
		}
		// Stored values must not change afterwards: keep a copy.
		if err := s.Put(e.key, bytes.Clone(pos)); err != nil {
			return nil, fmt.Errorf("exactly-once %s: record position: %w", e.id, err)
		}
		return outs, nil
	}))
}

func (e *ExactlyOnceProcessor) fail(err error) error {
	return kv.NewError("exactly-once process", e.id, err)
}

// Position returns the position of the last batch applied (a copy), or
// false if none was: after RecoverFromLatestCheckpoint, that of the
// checkpoint.
func (e *ExactlyOnceProcessor) Position() ([]byte, bool, error) {
	if e.m == nil {
		return nil, false, e.fail(fmt.Errorf("%w: nil manager", kv.ErrInvalid))
	}
	pos, ok, err := GetTyped[[]byte](e.m.State(), e.key)
	if err != nil || !ok {
		return nil, false, err
	}
	return bytes.Clone(pos), true, nil
}

// Seq returns Position as the sequence number given to ProcessAt; it
// fails with ErrTypeMismatch if the position is not 8 bytes long.
func (e *ExactlyOnceProcessor) Seq() (uint64, bool, error) {
	pos, ok, err := e.Position()
	if err != nil || !ok {
		return 0, false, err
	}
	if len(pos) != 8 {
		return 0, false, e.fail(fmt.Errorf("%w: the position has %d bytes, not the 8 of a sequence number", kv.ErrTypeMismatch, len(pos)))
	}
	return binary.BigEndian.Uint64(pos), true, nil
}

// Skipped returns how many batches this processor skipped as replays.
func (e *ExactlyOnceProcessor) Skipped() uint64 { return e.skipped.Load() }

// Close closes the inner processor if it has a Close method (as a
// component.Processor does).
func (e *ExactlyOnceProcessor) Close(ctx context.Context) error {
	if c, ok := e.p.(interface{ Close(context.Context) error }); ok {
		return c.Close(ctx)
	}
	return nil
}
