package txn

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

// LoggedInput makes an input that cannot rewind (HTTP server, stdin)
// replayable: every batch it reads is appended to a write-ahead log and
// made durable before the sender is acknowledged (the HTTP input answers
// 2xx then), and the batch's position is its log sequence number (LSN).
// After a crash the stream restores a checkpoint, Seek gives the LSN the
// checkpoint holds, and the batches logged after it are replayed before
// new input is read. Log segments older than the oldest retained checkpoint
// are deleted (ReleaseBefore).
//
// Batches are logged whole (Arrow IPC), metadata columns included.
//
// Without a Seek (no checkpoint to restore) the log is replayed from its
// start if no checkpoint ever completed with it (a crash before the first
// checkpoint: everything acknowledged is still processed), and skipped when
// one did (a --fresh start).
type LoggedInput struct {
	inner component.Input
	dir   string
	opts  Options
	log   *slog.Logger

	wal     *Log
	seek    *uint64
	replay  []replayEntry
	started bool
}

type replayEntry struct {
	lsn     uint64
	payload []byte
}

// releasedMarker records that a checkpoint completed with this log.
const releasedMarker = "RELEASED"

// NewLoggedInput wraps inner with a transaction log in dir.
func NewLoggedInput(inner component.Input, dir string, opts Options, log *slog.Logger) *LoggedInput {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LoggedInput{inner: inner, dir: dir, opts: opts, log: log}
}

var (
	_ component.Replayable = (*LoggedInput)(nil)
	_ component.Retainer   = (*LoggedInput)(nil)
)

// Seek makes the next batches the ones logged after pos.
func (in *LoggedInput) Seek(pos []byte) error {
	if len(pos) != 8 {
		return fmt.Errorf("transaction log: position of %d bytes, want 8", len(pos))
	}
	lsn := binary.BigEndian.Uint64(pos)
	in.seek = &lsn
	return nil
}

// Connect opens the log (loading what must be replayed) and the input.
func (in *LoggedInput) Connect(ctx context.Context) error {
	if in.wal == nil {
		opts := in.opts
		opts.Logger = in.log
		wal, err := Open(in.dir, opts)
		if err != nil {
			return fmt.Errorf("transaction log %s: %w", in.dir, err)
		}
		in.wal = wal
	}
	if !in.started {
		in.started = true
		from, replay := uint64(0), true
		if in.seek != nil {
			from = *in.seek
		} else if _, err := os.Stat(filepath.Join(in.dir, releasedMarker)); err == nil {
			replay = false // a fresh start over a log that checkpoints used
		}
		if replay {
			err := in.wal.ReadFrom(from, func(lsn uint64, payloads [][]byte) error {
				for _, p := range payloads {
					in.replay = append(in.replay, replayEntry{lsn: lsn, payload: bytes.Clone(p)})
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("transaction log %s: replay after %d: %w", in.dir, from, err)
			}
			if len(in.replay) > 0 {
				in.log.Info("replaying the transaction log", "after_lsn", from, "batches", len(in.replay))
			}
		}
	}
	return in.inner.Connect(ctx)
}

// Read returns logged batches to replay first, then new ones, each logged
// durably before its sender is acknowledged.
func (in *LoggedInput) Read(ctx context.Context) (*message.Batch, message.AckFunc, error) {
	if len(in.replay) > 0 {
		e := in.replay[0]
		in.replay = in.replay[1:]
		b, err := decodeBatch(e.payload)
		if err != nil {
			return nil, nil, fmt.Errorf("transaction log: entry %d: %w", e.lsn, err)
		}
		b.Pos = lsnPos(e.lsn)
		return b, nil, nil
	}
	b, ack, err := in.inner.Read(ctx)
	if err != nil || b == nil {
		return b, ack, err
	}
	payload, err := encodeBatch(b)
	if err == nil {
		var lsn uint64
		if lsn, err = in.wal.Append(ctx, [][]byte{payload}); err == nil {
			b.Pos = lsnPos(lsn)
		}
	}
	if ack != nil {
		// The sender hears back now: durable in the log is accepted.
		if aerr := ack(ctx, err); aerr != nil {
			in.log.Warn("acknowledging a logged batch failed", "error", aerr)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("transaction log: append: %w", err)
	}
	return b, nil, nil
}

// ReleaseBefore deletes log segments that only hold entries at or before
// pos (the oldest retained checkpoint's position).
func (in *LoggedInput) ReleaseBefore(_ context.Context, pos []byte) error {
	if len(pos) != 8 || in.wal == nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(in.dir, releasedMarker)); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(filepath.Join(in.dir, releasedMarker), nil, 0o644); err != nil {
			return err
		}
	}
	return in.wal.Truncate(binary.BigEndian.Uint64(pos) + 1)
}

// Close closes the input and the log.
func (in *LoggedInput) Close(ctx context.Context) error {
	err := in.inner.Close(ctx)
	if in.wal != nil {
		err = errors.Join(err, in.wal.Close())
	}
	return err
}

// Inner returns the wrapped input.
func (in *LoggedInput) Inner() component.Input { return in.inner }

func lsnPos(lsn uint64) []byte { return binary.BigEndian.AppendUint64(nil, lsn) }

func encodeBatch(b *message.Batch) ([]byte, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(b.Schema()), ipc.WithAllocator(message.Alloc))
	if err := w.Write(b.Record()); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decodeBatch(p []byte) (*message.Batch, error) {
	r, err := ipc.NewReader(bytes.NewReader(p), ipc.WithAllocator(message.Alloc))
	if err != nil {
		return nil, err
	}
	defer r.Release()
	if !r.Next() {
		if err := r.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("empty entry")
	}
	rec := r.RecordBatch()
	rec.Retain()
	return message.New(rec), nil
}
