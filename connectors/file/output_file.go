package file

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
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
		Delivery: component.DeliveryAtLeastOnce,
		Fields: []component.Field{
			{Name: fieldPath, Type: component.TypeString, Required: true,
				Description: "Path of the file to write (/dev/stdout works); its directory is created if missing."},
			{Name: fieldFormat, Type: component.TypeString, Default: formatNDJSON,
				Options:     []string{formatNDJSON, formatLines},
				Description: "ndjson and lines both write each record's payload followed by a newline."},
			{Name: fieldAppend, Type: component.TypeBool, Default: true,
				Description: "Append to an existing file; false truncates it when the output connects."},
			{Name: fieldSync, Type: component.TypeBool, Default: false,
				Description: "fsync the file after every batch (regular files only)."},
			{Name: fieldExactlyOnce, Type: component.TypeBool, Default: false, Advanced: true,
				Description: "Stage part files and rename them into place when a checkpoint completes (not supported yet)."},
		},
		Example: "output:\n  type: file\n  path: ./out.ndjson\n  append: false\n",
	}
}

func init() {
	component.RegisterOutput(fileOutputSpec(), newFileOutput)
}

// fileOutput is the file output.
type fileOutput struct {
	path   string
	append bool
	sync   bool

	mu      sync.Mutex // guards the fields below
	f       *os.File
	regular bool // f is a regular file (fsync makes sense)
	w       *bufio.Writer
	enc     message.RowEncoder
}

var _ component.Output = (*fileOutput)(nil)

func newFileOutput(conf *component.Config, _ component.Resources) (component.Output, error) {
	out := &fileOutput{
		path:   conf.String(fieldPath),
		append: conf.Bool(fieldAppend),
		sync:   conf.Bool(fieldSync),
	}
	if out.path == "" {
		return nil, conf.Errorf(fieldPath, "must not be empty")
	}
	switch f := conf.String(fieldFormat); f {
	case formatNDJSON, formatLines:
	default:
		return nil, conf.Errorf(fieldFormat, "unknown format %q (want ndjson or lines)", f)
	}
	if conf.Bool(fieldExactlyOnce) {
		return nil, conf.Errorf(fieldExactlyOnce, "not supported yet")
	}
	return out, nil
}

// Connect opens (and with append: false truncates) the file. Called again
// after an error, it reopens the file without truncating it a second time.
func (o *fileOutput) Connect(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
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

// Close flushes and closes the file.
func (o *fileOutput) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
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
