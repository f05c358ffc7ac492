package component

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state/kv"
)

// ErrEndOfInput is returned by Input.Read when a bounded input is exhausted.
var ErrEndOfInput = errors.New("end of input")

// ErrNotConnected is returned by Write or Read when the connection was lost;
// the engine reconnects (with backoff) and retries.
var ErrNotConnected = errors.New("not connected")

// Input produces batches.
type Input interface {
	// Connect establishes connections. It is called once before the first
	// Read, and again (with backoff) after Read returns ErrNotConnected.
	Connect(ctx context.Context) error
	// Read blocks until a batch is available, ctx is done, or the input is
	// exhausted (ErrEndOfInput). The returned AckFunc (which may be nil) is
	// called once the batch and everything derived from it has been written
	// by the output, or has failed for good. Read is called from one
	// goroutine at a time; batches are handed over to the caller.
	Read(ctx context.Context) (*message.Batch, message.AckFunc, error)
	// Close releases resources. Read is not called afterwards.
	Close(ctx context.Context) error
}

// Processor transforms batches. Each pipeline worker builds its own
// processor instances, so a processor is used by one goroutine at a time.
type Processor interface {
	// Process returns zero or more batches for one input batch. Records that
	// fail may be returned as a batch with a __meta_error column (see
	// message.MetaError); the engine routes it to error_output. A non-nil
	// error fails the whole input batch, which then goes to error_output.
	Process(ctx context.Context, b *message.Batch) ([]*message.Batch, error)
	// Close releases resources.
	Close(ctx context.Context) error
}

// Flusher is implemented by processors that hold records back (batch,
// windows). Flush returns what they hold. The engine calls it at end of
// stream; for stateless processors also at every checkpoint barrier (so
// nothing buffered escapes a checkpoint) and every FlushInterval when that
// is positive. Stateful processors keep what they hold in their state
// across checkpoints and are flushed only at end of stream.
type Flusher interface {
	Flush(ctx context.Context) ([]*message.Batch, error)
	FlushInterval() time.Duration
}

// AckHolder is implemented by processors that keep records across input
// batches: they take over the input batch's acknowledgements (with
// message.TransferAcks) and attach them to the batch that finally carries
// those records. For other processors the engine moves the acks itself.
type AckHolder interface {
	HoldsAcks()
}

// Output writes batches.
type Output interface {
	// Connect establishes connections; it is called before the first Write
	// and again (with backoff) after Write returns ErrNotConnected.
	Connect(ctx context.Context) error
	// Write writes a batch. It returns nil only once the batch is written as
	// durably as the output can make it; an error makes the engine retry
	// the same batch with exponential backoff.
	Write(ctx context.Context, b *message.Batch) error
	// Close flushes and releases resources.
	Close(ctx context.Context) error
}

// Resources are what a constructor gets besides its config.
type Resources struct {
	Logger *slog.Logger
	// Stream is the stream's label (its index or name), Label the
	// component's label (kind and type) — both for logs and metrics.
	Stream string
	Label  string
	// State is the keyed-state backend of this processor instance. The
	// engine sets it for processors whose spec is Stateful; it holds the
	// key groups KeyGroups of MaxKeyGroups. The processor is its owner.
	State        kv.Backend
	KeyGroups    kv.KeyGroupRange
	MaxKeyGroups int
	// DataDir is a local directory for this stream's durable component data
	// (the transaction log of inputs that cannot replay). It is set when
	// state.enabled is true, and empty otherwise.
	DataDir string
}

// Keyed is implemented by stateful processors (Spec.Stateful). The engine
// partitions their input by key group so that every row reaches the worker
// that owns its key's state; rows of one key keep their order.
type Keyed interface {
	// Keys calls fn with the key of every row of b, in row order. The key
	// bytes are only valid during the call. A row whose key cannot be
	// computed is reported with a nil key; it goes to the first worker,
	// whose Process reports it as failed.
	Keys(b *message.Batch, fn func(row int, key []byte)) error
}

// BarrierListener is implemented by stateful processors that emit at
// checkpoints (aggregate with emit: on_checkpoint). OnBarrier is called when
// the barrier of checkpoint id reaches the processor, before its state is
// snapshotted; what it returns is emitted ahead of the barrier.
type BarrierListener interface {
	OnBarrier(ctx context.Context, id uint64) ([]*message.Batch, error)
}

// Ticker is implemented by stateful processors that act on processing
// time (processing-time windows, TTL cleanup): OnTick is called about every
// TickInterval with the current time, in order with the data.
type Ticker interface {
	OnTick(ctx context.Context, now time.Time) ([]*message.Batch, error)
	TickInterval() time.Duration
}

// Watermarker is implemented by stateful processors driven by event time
// (event-time windows). With thread_num > 1 the engine's keyed exchange
// sees the whole stream: it calls Watermarks, on an instance of its own,
// with every batch in input order, hands each row's watermark to the worker
// the row goes to (message.Batch.Watermarks), and calls OnWatermark on
// every worker with the batch's last watermark, so that each worker sees
// the watermark of the whole stream, as a single worker would, and a
// worker that receives no rows still closes its windows.
type Watermarker interface {
	// Watermarks sets marks[i] to the watermark after row i of b
	// (math.MinInt64 when unknown) and returns the watermark after the
	// batch. The instance keeps the watermark across batches.
	Watermarks(b *message.Batch, marks []int64) (int64, error)
	// OnWatermark advances the instance's watermark to wm (if it is
	// ahead) and returns what that closes.
	OnWatermark(ctx context.Context, wm int64) ([]*message.Batch, error)
}

// InputConstructor builds an input from its config.
type InputConstructor func(conf *Config, res Resources) (Input, error)

// ProcessorConstructor builds a processor from its config.
type ProcessorConstructor func(conf *Config, res Resources) (Processor, error)

// OutputConstructor builds an output from its config.
type OutputConstructor func(conf *Config, res Resources) (Output, error)

// Progresser is implemented by bounded inputs that know how far they are,
// for the progress line of a long run: done and total are in bytes (total
// is 0 when unknown).
type Progresser interface {
	Progress() (done, total int64)
}

// Replayable is implemented by inputs that can resume from a position: the
// Pos an input put on a batch it returned earlier (possibly in another
// process: positions are what checkpoints store). Seek is called before
// Connect; the next batch read is the one after that position.
type Replayable interface {
	Seek(pos []byte) error
}

// ErrPermanent marks a write error that retrying cannot fix (an HTTP 400,
// a record too large for the broker). The engine sends such a batch to
// error_output when the stream has one; without one it keeps retrying,
// because a batch is never dropped silently.
var ErrPermanent = errors.New("permanent error")

// Permanent wraps err so that IsPermanent reports true.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrPermanent, err)
}

// IsPermanent reports whether err is permanent: it wraps ErrPermanent, or
// an error in its chain has a Retryable method that returns false.
func IsPermanent(err error) bool {
	if errors.Is(err, ErrPermanent) {
		return true
	}
	var r interface{ Retryable() bool }
	return errors.As(err, &r) && !r.Retryable()
}

// Committer is implemented by outputs that deliver exactly once through
// two-phase commit (kafka and file with exactly_once: true). The engine
// drives it from checkpoints:
//
//   - Write adds records to the current epoch, invisible to readers.
//   - PreCommit(id) is called by the sink goroutine when the barrier of
//     checkpoint id reaches the output: every record written before it must
//     become durable but stay invisible (Kafka: flush the open transaction;
//     files: close the staged part file), and later Writes belong to the
//     next epoch. It returns a handle — what Commit needs to finish the
//     epoch in another process after a crash (transactional id, producer id
//     and epoch; the staged file names) — which the checkpoint's manifest
//     stores.
//   - Commit(id, handle) makes epoch id visible. It is called once the
//     checkpoint's manifest is stored, from another goroutine than Write
//     (Commit must be safe to run concurrently with Write), and again after
//     a crash from the handle of the restored checkpoint: it must be
//     idempotent.
//   - A checkpoint that fails does not abort anything: its epoch stays
//     pre-committed, and the next checkpoint that completes commits it. So
//     the handle PreCommit returns must cover every epoch pre-committed and
//     not yet committed, and Commit commits them all, in order.
//   - Abort(id) discards the pending epochs up to id; the engine does not
//     call it (recovery aborts through Recover) — it is for library users
//     who drive an output by hand.
//   - Recover(id, handle) is called once, before Connect, when a stream
//     starts: id and handle are those of the checkpoint restored (commit
//     it, idempotently: it may or may not have been committed before the
//     crash), or 0 and nil when there is none. Every other pending epoch of
//     this output (later checkpoints that never completed; a zombie writer
//     still running) must be aborted or fenced.
type Committer interface {
	Output
	PreCommit(ctx context.Context, id uint64) (handle []byte, err error)
	Commit(ctx context.Context, id uint64, handle []byte) error
	Abort(ctx context.Context, id uint64) error
	Recover(ctx context.Context, id uint64, handle []byte) error
}

// ExactlyOnce is implemented by outputs that may or may not use two-phase
// commit depending on their config: ExactlyOnce reports whether this
// instance does (exactly_once: true).
type ExactlyOnce interface {
	ExactlyOnce() bool
}

// CheckpointCommitter is implemented by inputs that act once a checkpoint
// has completed: pos is the input's position stored in it. The Kafka input
// commits it as the consumer group's offsets (for lag monitoring; the
// checkpoint, not the group, is where a restart resumes).
type CheckpointCommitter interface {
	CommitCheckpoint(ctx context.Context, pos []byte) error
}

// Retainer is implemented by inputs that keep data for replay (the
// transaction log): after a checkpoint completes, pos is the position of
// the oldest checkpoint still retained; data up to it is no longer needed.
type Retainer interface {
	ReleaseBefore(ctx context.Context, pos []byte) error
}

// ErrFatal marks an error after which a component cannot go on in this
// process (a Kafka producer fenced by a newer instance, a transaction the
// broker aborted): the engine stops the stream instead of retrying, and the
// next start recovers from the last checkpoint.
var ErrFatal = errors.New("fatal error")

// Fatal wraps err so that errors.Is(err, ErrFatal) reports true.
func Fatal(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrFatal, err)
}
