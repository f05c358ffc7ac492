// Package stdio provides the stdin input and the stdout output.
//
// The stdin input reads lines in a goroutine it owns, because a read from
// standard input blocks and cannot be abandoned. That goroutine sends
// chunks of lines (every complete line that is already buffered, at most
// batch_size) on a bounded channel, so backpressure reaches the reader;
// Read assembles batches from the chunks and emits one when it is full or
// max_wait after its first line was read, so interactive input flows.
//
// Close stops the reader goroutine when the reader can be interrupted (a
// pipe or other pollable file: Close sets a read deadline). A blocking
// os.Stdin (a terminal or an inherited pipe, the usual case) cannot be
// interrupted: Close then returns at once and the goroutine ends at the
// next line or end of input, without sending anything further. Tests use
// an os.Pipe, which is interruptible.
package stdio

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

const (
	fieldFormat    = "format"
	fieldBatchSize = "batch_size"
	fieldMaxWait   = "max_wait"
)

const (
	formatLines  = "lines"
	formatNDJSON = "ndjson"
)

const (
	readBufferSize = 1 << 20
	// chunkQueue bounds the chunks read ahead of Read.
	chunkQueue = 4
)

func stdinSpec() component.Spec {
	return component.Spec{
		Name: "stdin",
		Summary: "Reads lines from standard input; a batch is emitted when full or max_wait after its first line. " +
			"The stream ends at end of input.",
		Bounded: true,
		Fields: []component.Field{
			{Name: fieldFormat, Type: component.TypeString, Default: formatLines,
				Options:     []string{formatLines, formatNDJSON},
				Description: "lines: one __value__ record per line (empty lines included); ndjson: the same, skipping blank lines."},
			{Name: fieldBatchSize, Type: component.TypeInt, Default: int64(1024),
				Description: "Most records per batch."},
			{Name: fieldMaxWait, Type: component.TypeDuration, Default: 100 * time.Millisecond,
				Description: "Longest time a batch waits for more lines after its first line."},
		},
		Example: "input:\n  type: stdin\n  format: ndjson\n",
	}
}

func init() {
	component.RegisterInput(stdinSpec(), func(conf *component.Config, res component.Resources) (component.Input, error) {
		return newStdinInput(conf, res, os.Stdin)
	})
}

// chunk is a group of lines read together: line i is data[ends[i-1]:ends[i]].
type chunk struct {
	data []byte
	ends []int
	at   time.Time // when its first line was read
}

// line returns line i of c.
func (c *chunk) line(i int) []byte {
	start := 0
	if i > 0 {
		start = c.ends[i-1]
	}
	return c.data[start:c.ends[i]:c.ends[i]]
}

type deadliner interface {
	SetReadDeadline(time.Time) error
}

// stdinInput is the stdin input.
type stdinInput struct {
	r         io.Reader
	skipBlank bool
	batchSize int
	maxWait   time.Duration
	log       *slog.Logger

	// Owned by the reader goroutine until it closes chunks; readErr is
	// read only after that (the close orders it).
	chunks  chan *chunk
	readErr error
	stop    chan struct{} // closed by Close: the reader sends nothing more
	done    chan struct{} // closed when the reader goroutine has returned

	// Used by Read (one goroutine at a time).
	pending  *chunk // the chunk being consumed
	next     int    // its next line
	values   [][]byte
	timer    *time.Timer
	finished bool // chunks is closed and drained

	closeOnce sync.Once
}

var _ component.Input = (*stdinInput)(nil)

// newStdinInput builds the input over r (os.Stdin, or a pipe in tests).
func newStdinInput(conf *component.Config, res component.Resources, r io.Reader) (*stdinInput, error) {
	in := &stdinInput{
		r:         r,
		batchSize: conf.Int(fieldBatchSize),
		maxWait:   conf.Duration(fieldMaxWait),
		log:       res.Logger,
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	switch f := conf.String(fieldFormat); f {
	case formatLines:
	case formatNDJSON:
		in.skipBlank = true
	default:
		return nil, conf.Errorf(fieldFormat, "unknown format %q (want lines or ndjson)", f)
	}
	if in.batchSize < 1 {
		return nil, conf.Errorf(fieldBatchSize, "must be at least 1, got %d", in.batchSize)
	}
	if in.maxWait < 0 {
		return nil, conf.Errorf(fieldMaxWait, "must not be negative, got %s", in.maxWait)
	}
	return in, nil
}

// Connect starts the reader goroutine (once).
func (in *stdinInput) Connect(context.Context) error {
	if in.chunks != nil {
		return nil
	}
	in.chunks = make(chan *chunk, chunkQueue)
	in.stop = make(chan struct{})
	in.done = make(chan struct{})
	go in.run()
	return nil
}

// run reads lines until end of input, an error, or Close.
func (in *stdinInput) run() {
	defer close(in.done)
	defer close(in.chunks)
	br := bufio.NewReaderSize(in.r, readBufferSize)
	for {
		c, err := in.readChunk(br)
		if len(c.ends) > 0 {
			select {
			case in.chunks <- c:
			case <-in.stop:
				return
			}
		}
		if err != nil {
			select {
			case <-in.stop: // interrupted by Close: not an error
			default:
				if !errors.Is(err, io.EOF) {
					in.readErr = err
				}
			}
			return
		}
	}
}

// readChunk reads one line (blocking), then every further complete line
// already buffered, up to batchSize lines. It returns io.EOF at the end of
// input, possibly with lines.
func (in *stdinInput) readChunk(br *bufio.Reader) (*chunk, error) {
	c := &chunk{}
	for len(c.ends) < in.batchSize {
		if len(c.ends) > 0 && !lineBuffered(br) {
			return c, nil
		}
		start := len(c.data)
		n := 0
		var err error
		for {
			var part []byte
			part, err = br.ReadSlice('\n')
			n += len(part)
			c.data = append(c.data, part...)
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if n > 0 {
			line := c.data[start:]
			line = bytes.TrimSuffix(line, []byte{'\n'})
			line = bytes.TrimSuffix(line, []byte{'\r'})
			c.data = c.data[:start+len(line)]
			if in.skipBlank && len(bytes.TrimSpace(line)) == 0 {
				c.data = c.data[:start]
			} else {
				if len(c.ends) == 0 {
					c.at = time.Now()
				}
				c.ends = append(c.ends, len(c.data))
			}
		}
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

// lineBuffered reports whether a complete line can be read from br without
// blocking.
func lineBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n == 0 {
		return false
	}
	buf, _ := br.Peek(n)
	return bytes.IndexByte(buf, '\n') >= 0
}

// Read returns a batch once it is full or max_wait after its first line was
// read; it returns component.ErrEndOfInput after the last line.
func (in *stdinInput) Read(ctx context.Context) (*message.Batch, message.AckFunc, error) {
	if in.chunks == nil {
		return nil, nil, fmt.Errorf("stdin input: read before connect: %w", component.ErrNotConnected)
	}
	if in.pending == nil {
		if in.finished {
			return nil, nil, in.endErr()
		}
		select {
		case c, ok := <-in.chunks:
			if !ok {
				in.finished = true
				return nil, nil, in.endErr()
			}
			in.pending, in.next = c, 0
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	deadline := in.pending.at.Add(in.maxWait)
	values := in.values[:0]
	for {
		// Take what the current chunk has.
		c := in.pending
		for in.next < len(c.ends) && len(values) < in.batchSize {
			values = append(values, c.line(in.next))
			in.next++
		}
		if in.next == len(c.ends) {
			in.pending = nil
		}
		if len(values) == in.batchSize || in.finished {
			break
		}
		// Wait for the next chunk until the deadline.
		c, ok, waited := in.nextChunk(ctx, deadline)
		if !waited {
			break
		}
		if !ok {
			in.finished = true
			break
		}
		in.pending, in.next = c, 0
	}
	b := message.FromValues(values)
	clear(values) // do not pin the chunks' memory
	in.values = values[:0]
	return b, nil, nil
}

// nextChunk returns the next chunk if one arrives before the deadline;
// waited is false when the deadline passed or ctx is done first, ok is
// false when the reader has finished.
func (in *stdinInput) nextChunk(ctx context.Context, deadline time.Time) (c *chunk, ok, waited bool) {
	select {
	case c, ok = <-in.chunks:
		return c, ok, true
	default:
	}
	d := time.Until(deadline)
	if d <= 0 {
		return nil, false, false
	}
	if in.timer == nil {
		in.timer = time.NewTimer(d)
	} else {
		in.timer.Reset(d)
	}
	defer in.timer.Stop()
	select {
	case c, ok = <-in.chunks:
		return c, ok, true
	case <-in.timer.C:
		return nil, false, false
	case <-ctx.Done():
		return nil, false, false
	}
}

// endErr is what Read returns once every line has been returned.
func (in *stdinInput) endErr() error {
	if in.readErr != nil {
		return fmt.Errorf("stdin input: read: %w", in.readErr)
	}
	return component.ErrEndOfInput
}

// Close stops the reader goroutine and waits for it when the reader can be
// interrupted; see the package comment for a blocking os.Stdin.
func (in *stdinInput) Close(ctx context.Context) error {
	if in.chunks == nil {
		return nil
	}
	in.closeOnce.Do(func() { close(in.stop) })
	if d, ok := in.r.(deadliner); !ok || d.SetReadDeadline(time.Now()) != nil {
		select {
		case <-in.done:
		default:
			in.log.Debug("stdin input: the reader stays blocked until the next line or end of input")
		}
		return nil
	}
	select {
	case <-in.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stdin input: close: reader did not stop: %w", ctx.Err())
	}
}
