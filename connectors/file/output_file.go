package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

const (
	fieldAppend      = "append"
	fieldSync        = "sync"
	fieldExactlyOnce = "exactly_once"
)

const writeBufferSize = 1 << 20

func fileOutputSpec() component.Spec {
	return component.Spec{
		Name: "file",
		Summary: "Writes one line per record to a file: the __value__ payload, or a JSON object of the " +
			"record's columns when there is no __value__ column.",
		Delivery: component.DeliveryExactlyOnce,
		Fields: []component.Field{
			{Name: fieldPath, Type: component.TypeString, Required: true,
				Description: "Path of the file to write (/dev/stdout works); its directory is created if missing."},
			{Name: fieldFormat, Type: component.TypeString, Default: formatNDJSON,
				Options:     []string{formatNDJSON, formatLines},
				Description: "ndjson and lines both write each record's payload followed by a newline."},
			{Name: fieldAppend, Type: component.TypeBool, Default: true,
				Description: "Append to an existing file; false truncates it when the output connects (with exactly_once: when the stream starts without a checkpoint)."},
			{Name: fieldSync, Type: component.TypeBool, Default: false,
				Description: "fsync the file after every batch (regular files only; exactly_once always fsyncs at checkpoints)."},
			{Name: fieldExactlyOnce, Type: component.TypeBool, Default: false, Advanced: true,
				Description: "Stage each checkpoint's records in a hidden directory next to the file and append them to it only when the checkpoint completes (a regular file written by this output only)."},
		},
		Example: "output:\n  type: file\n  path: ./out.ndjson\n  append: false\n",
	}
}

func init() {
	component.RegisterOutput(fileOutputSpec(), newFileOutput)
}

// fileOutput is the file output.
//
// Lock order: commitMu before mu. With exactly_once, Write and PreCommit
// (the sink goroutine) take mu; Commit (another goroutine) takes commitMu
// and, only to forget the committed epochs, mu.
type fileOutput struct {
	path        string
	append      bool
	sync        bool
	exactlyOnce bool
	log         *slog.Logger

	mu      sync.Mutex // guards the fields below
	f       *os.File
	regular bool // f is a regular file (fsync makes sense)
	w       *bufio.Writer
	enc     message.RowEncoder
	// exactly_once only:
	connected bool
	part      *os.File      // the part being written, nil between epochs
	partOff   int64         // bytes of whole batches in part
	parts     []string      // the current epoch's parts (open-<k>), in order
	seq       int           // k of the next open-<k>
	pending   []stagedEpoch // pre-committed epochs, neither committed nor aborted
	buf       []byte        // lines to write, up to stagedWriteChunk

	commitMu sync.Mutex // serializes Commit, Abort and Recover
	stage    *stager    // the commit protocol for path
}

var (
	_ component.Output      = (*fileOutput)(nil)
	_ component.Committer   = (*fileOutput)(nil)
	_ component.ExactlyOnce = (*fileOutput)(nil)
)

func newFileOutput(conf *component.Config, res component.Resources) (component.Output, error) {
	out := &fileOutput{
		path:        conf.String(fieldPath),
		append:      conf.Bool(fieldAppend),
		sync:        conf.Bool(fieldSync),
		exactlyOnce: conf.Bool(fieldExactlyOnce),
		log:         res.Logger,
	}
	if out.log == nil {
		out.log = slog.New(slog.DiscardHandler)
	}
	if out.path == "" {
		return nil, conf.Errorf(fieldPath, "must not be empty")
	}
	switch f := conf.String(fieldFormat); f {
	case formatNDJSON, formatLines:
	default:
		return nil, conf.Errorf(fieldFormat, "unknown format %q (want ndjson or lines)", f)
	}
	if out.exactlyOnce {
		if strings.HasPrefix(out.path, "/dev/") {
			return nil, conf.Errorf(fieldExactlyOnce, "needs a regular file, not %s", out.path)
		}
		out.stage = newStager(out.path, out.log)
	}
	return out, nil
}

// ExactlyOnce reports whether the output commits at checkpoints
// (exactly_once: true).
func (o *fileOutput) ExactlyOnce() bool { return o.exactlyOnce }

// Connect opens (and with append: false truncates) the file. Called again
// after an error, it reopens the file without truncating it a second time.
// With exactly_once it only creates the staging directory (and, called
// again, closes the current part: the next Write starts a new one).
func (o *fileOutput) Connect(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.exactlyOnce {
		return o.connectStaged()
	}
	flags := os.O_WRONLY | os.O_CREATE
	if o.append || o.f != nil {
		flags |= os.O_APPEND // a reconnect continues after what was written
	} else {
		flags |= os.O_TRUNC
	}
	if o.f != nil {
		o.f.Close() // a reconnect: what was written is already in the OS
		o.f = nil
	}
	if dir := filepath.Dir(o.path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("file output: %w", err)
		}
	}
	f, err := os.OpenFile(o.path, flags, 0o644)
	if err != nil {
		return fmt.Errorf("file output: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("file output: %w", err)
	}
	o.f = f
	o.regular = st.Mode().IsRegular()
	if o.regular && flags&os.O_APPEND != 0 && st.Size() > 0 {
		// A process killed in the middle of a write leaves a torn last
		// line. That record was never acknowledged and will be written
		// again, so cut the torn part off rather than glue the next line
		// to it.
		if err := cutTornLine(o.path); err != nil {
			f.Close()
			o.f = nil
			return fmt.Errorf("file output: %s: %w", o.path, err)
		}
	}
	if o.w == nil {
		o.w = bufio.NewWriterSize(f, writeBufferSize)
	} else {
		o.w.Reset(f)
	}
	return nil
}

// Write writes one line per record and flushes, so a nil error means the
// batch is in the operating system (and on disk with sync: true).
func (o *fileOutput) Write(ctx context.Context, b *message.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.exactlyOnce {
		return o.writeStaged(b)
	}
	if o.f == nil {
		return fmt.Errorf("file output %s: %w", o.path, component.ErrNotConnected)
	}
	err := o.enc.Rows(b, func(_ int, payload []byte) error {
		o.w.Write(payload) // the error sticks in w: Flush returns it
		return o.w.WriteByte('\n')
	})
	if err == nil {
		err = o.w.Flush()
	}
	if err != nil {
		// A bufio.Writer keeps its first error forever: start afresh so
		// the engine's retry can succeed.
		o.w.Reset(o.f)
		return fmt.Errorf("file output %s: write: %w", o.path, err)
	}
	if o.sync && o.regular {
		if err := o.f.Sync(); err != nil {
			return fmt.Errorf("file output %s: sync: %w", o.path, err)
		}
	}
	return nil
}

// Close flushes and closes the file. With exactly_once it closes the
// current part, which is not committed: the records written after the last
// checkpoint barrier are written again by the replay.
func (o *fileOutput) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.exactlyOnce {
		o.connected = false
		if o.part != nil {
			err := o.part.Close()
			o.part = nil
			if err != nil {
				return fmt.Errorf("file output %s: close: %w", o.path, err)
			}
		}
		return nil
	}
	if o.f == nil {
		return nil
	}
	err := o.w.Flush()
	if err == nil && o.sync && o.regular {
		err = o.f.Sync()
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	o.f = nil
	if err != nil {
		return fmt.Errorf("file output %s: close: %w", o.path, err)
	}
	return nil
}

// cutTornLine truncates f after its last newline when it does not end with
// one.
func cutTornLine(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	end := size
	for end > 0 {
		start := max(end-chunk, 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && n < int(end-start) {
			return fmt.Errorf("read tail: %w", err)
		}
		if end == size && n > 0 && buf[n-1] == '\n' {
			return nil
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return f.Truncate(start + int64(i) + 1)
		}
		end = start
	}
	return f.Truncate(0)
}

// stagedWriteChunk bounds the memory a staged Write uses for a batch.
const stagedWriteChunk = 1 << 20

// connectStaged creates the staging directory and closes the current part,
// if any (a reconnect after an error).
func (o *fileOutput) connectStaged() error {
	if err := os.MkdirAll(o.stage.dir, 0o755); err != nil {
		return fmt.Errorf("file output: %w", err)
	}
	if err := syncDir(filepath.Dir(o.stage.dir)); err != nil {
		return fmt.Errorf("file output: %w", err)
	}
	if _, _, err := o.stage.statTarget(); err != nil {
		return fmt.Errorf("file output: %w", err)
	}
	if err := o.closePartLocked(); err != nil {
		return fmt.Errorf("file output %s: %w", o.path, err)
	}
	o.connected = true
	return nil
}

// writeStaged appends the batch's lines to the current part. A failed
// Write leaves partOff where it was: the retry overwrites what it wrote,
// and closePartLocked cuts off what is left.
func (o *fileOutput) writeStaged(b *message.Batch) error {
	if !o.connected {
		return fmt.Errorf("file output %s: %w", o.path, component.ErrNotConnected)
	}
	if o.part == nil {
		name := "open-" + strconv.Itoa(o.seq)
		f, err := os.OpenFile(o.stage.path(name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("file output %s: stage: %w", o.path, err)
		}
		o.seq++
		o.part, o.partOff = f, 0
		o.parts = append(o.parts, name)
	}
	off := o.partOff
	buf := o.buf[:0]
	flush := func() error {
		n, err := o.part.WriteAt(buf, off)
		off += int64(n)
		buf = buf[:0]
		return err
	}
	err := o.enc.Rows(b, func(_ int, payload []byte) error {
		buf = append(buf, payload...)
		buf = append(buf, '\n')
		if len(buf) >= stagedWriteChunk {
			return flush()
		}
		return nil
	})
	if err == nil && len(buf) > 0 {
		err = flush()
	}
	if cap(buf) <= 2*stagedWriteChunk {
		o.buf = buf[:0]
	}
	if err != nil {
		return fmt.Errorf("file output %s: stage: %w", o.path, err)
	}
	o.partOff = off
	return nil
}

// closePartLocked cuts the current part to its whole batches, fsyncs and
// closes it.
func (o *fileOutput) closePartLocked() error {
	if o.part == nil {
		return nil
	}
	f := o.part
	o.part = nil
	err := f.Truncate(o.partOff)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close staged part %s: %w", f.Name(), err)
	}
	return nil
}

// PreCommit makes the records written since the previous barrier durable
// in staged parts and returns the handle that commits them (with every
// earlier epoch still pending). When it fails, the epoch's records are
// discarded as by Abort.
func (o *fileOutput) PreCommit(_ context.Context, id uint64) ([]byte, error) {
	if !o.exactlyOnce {
		return nil, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if n := len(o.pending); n > 0 && o.pending[n-1].ID >= id {
		o.discardPartsLocked(id)
		return nil, fmt.Errorf("file output %s: pre-commit of checkpoint %d after %d", o.path, id, o.pending[n-1].ID)
	}
	if err := o.stageEpochLocked(id); err != nil {
		o.discardPartsLocked(id)
		return nil, fmt.Errorf("file output %s: pre-commit %d: %w", o.path, id, err)
	}
	h, err := json.Marshal(commitHandle{Target: o.path, Epochs: o.pending})
	if err != nil {
		return nil, fmt.Errorf("file output %s: pre-commit %d: %w", o.path, id, err)
	}
	return h, nil
}

// stageEpochLocked closes the current epoch's parts, renames them to
// part-<id>-<i> and makes the names durable.
func (o *fileOutput) stageEpochLocked(id uint64) error {
	if err := o.closePartLocked(); err != nil {
		return err
	}
	if len(o.parts) == 0 {
		return nil
	}
	e := stagedEpoch{ID: id}
	for i, name := range o.parts {
		to := partName(id, i)
		if err := os.Rename(o.stage.path(name), o.stage.path(to)); err != nil {
			return err
		}
		e.Parts = append(e.Parts, to)
	}
	if err := syncDir(o.stage.dir); err != nil {
		return err
	}
	o.parts = o.parts[:0]
	o.pending = append(o.pending, e)
	return nil
}

// discardPartsLocked deletes the current epoch's parts after a failed
// pre-commit of checkpoint id (renamed or not).
func (o *fileOutput) discardPartsLocked(id uint64) {
	if o.part != nil {
		o.part.Close()
		o.part = nil
	}
	for i, name := range o.parts {
		os.Remove(o.stage.path(name))
		os.Remove(o.stage.path(partName(id, i)))
	}
	o.parts = o.parts[:0]
}

// stagerFor returns the stager of target: the output's own, or one for
// the target of a handle written under another path.
func (o *fileOutput) stagerFor(target string) *stager {
	if target == o.path {
		return o.stage
	}
	s := newStager(target, o.log)
	s.hook = o.stage.hook
	return s
}

// Commit appends the staged records of the handle's epochs to the file
// (idempotently: see the package doc). It may run concurrently with Write.
func (o *fileOutput) Commit(_ context.Context, id uint64, handle []byte) error {
	if !o.exactlyOnce {
		return nil
	}
	h, err := parseHandle(handle)
	if err != nil {
		return fmt.Errorf("file output %s: commit %d: %w", o.path, id, err)
	}
	o.commitMu.Lock()
	defer o.commitMu.Unlock()
	if err := o.stagerFor(h.Target).commit(h); err != nil {
		return fmt.Errorf("file output %s: commit %d: %w", h.Target, id, err)
	}
	o.mu.Lock()
	o.pending = slices.DeleteFunc(o.pending, func(e stagedEpoch) bool { return e.ID <= id })
	o.mu.Unlock()
	return nil
}

// Abort discards the staged records of epoch id.
func (o *fileOutput) Abort(_ context.Context, id uint64) error {
	if !o.exactlyOnce {
		return nil
	}
	o.commitMu.Lock()
	defer o.commitMu.Unlock()
	o.mu.Lock()
	i := slices.IndexFunc(o.pending, func(e stagedEpoch) bool { return e.ID == id })
	var e stagedEpoch
	if i >= 0 {
		e = o.pending[i]
		o.pending = slices.Delete(o.pending, i, i+1)
	}
	o.mu.Unlock()
	if i < 0 {
		return nil
	}
	if err := o.stage.abort(e); err != nil {
		return fmt.Errorf("file output %s: abort %d: %w", o.path, id, err)
	}
	return nil
}

// Recover finishes the commit of the restored checkpoint id, rolls back
// commits of later epochs, and deletes everything else staged (see the
// package doc). It is called before Connect.
func (o *fileOutput) Recover(_ context.Context, id uint64, handle []byte) error {
	if !o.exactlyOnce {
		return nil
	}
	var h *commitHandle
	if handle != nil {
		var err error
		if h, err = parseHandle(handle); err != nil {
			return fmt.Errorf("file output %s: recover checkpoint %d: %w", o.path, id, err)
		}
	}
	o.commitMu.Lock()
	defer o.commitMu.Unlock()
	if err := o.recover(id, h); err != nil {
		return fmt.Errorf("file output %s: recover checkpoint %d: %w", o.path, id, err)
	}
	o.mu.Lock()
	o.pending = nil
	o.mu.Unlock()
	return nil
}

func (o *fileOutput) recover(id uint64, h *commitHandle) error {
	s := o.stage
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	if _, _, err := s.statTarget(); err != nil {
		return err
	}
	j, err := s.loadJournal()
	if err != nil {
		return err
	}
	keep := map[uint64]bool{}
	if h != nil && h.Target == o.path {
		for _, e := range h.Epochs {
			keep[e.ID] = true
		}
	}
	if id == 0 {
		// No checkpoint: an unfinished commit is torn output, and the
		// epochs start again at 1.
		if _, err := s.rollBack(j, math.MaxUint64, keep); err != nil {
			return err
		}
		if err := os.Remove(s.path(journalName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if !o.append {
			if err := truncateFile(o.path, 0); err != nil {
				return err
			}
		}
	} else if changed, err := s.rollBack(j, id, keep); err != nil {
		return err
	} else if changed {
		if err := s.storeJournal(j); err != nil {
			return err
		}
	}
	if h != nil {
		if err := o.stagerFor(h.Target).commit(h); err != nil {
			return err
		}
	}
	return s.clean()
}
