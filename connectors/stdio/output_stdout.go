package stdio

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

const writeBufferSize = 64 << 10

func stdoutSpec() component.Spec {
	return component.Spec{
		Name: "stdout",
		Summary: "Writes one line per record to standard output: the __value__ payload, or a JSON object of " +
			"the record's columns when there is no __value__ column.",
		Delivery: component.DeliveryAtLeastOnce,
		Example:  "output:\n  type: stdout\n",
	}
}

func init() {
	component.RegisterOutput(stdoutSpec(), func(conf *component.Config, res component.Resources) (component.Output, error) {
		return newStdoutOutput(os.Stdout), nil
	})
}

// stdoutOutput is the stdout output.
type stdoutOutput struct {
	mu  sync.Mutex // guards the fields below
	dst io.Writer
	w   *bufio.Writer
	enc message.RowEncoder
}

var _ component.Output = (*stdoutOutput)(nil)

// newStdoutOutput builds the output over w (os.Stdout, or a pipe in tests).
func newStdoutOutput(w io.Writer) *stdoutOutput {
	return &stdoutOutput{dst: w}
}

// Connect prepares the buffered writer.
func (o *stdoutOutput) Connect(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.w == nil {
		o.w = bufio.NewWriterSize(o.dst, writeBufferSize)
	}
	return nil
}

// Write writes one line per record and flushes.
func (o *stdoutOutput) Write(ctx context.Context, b *message.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.w == nil {
		return fmt.Errorf("stdout output: %w", component.ErrNotConnected)
	}
	err := o.enc.Rows(b, func(_ int, payload []byte) error {
		o.w.Write(payload) // the error sticks in w: WriteByte returns it
		return o.w.WriteByte('\n')
	})
	if err == nil {
		err = o.w.Flush()
	}
	if err != nil {
		o.w.Reset(o.dst) // bufio keeps its first error: start afresh for the retry
		return fmt.Errorf("stdout output: write: %w", err)
	}
	return nil
}

// Close flushes what is buffered; standard output stays open.
func (o *stdoutOutput) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.w == nil {
		return nil
	}
	if err := o.w.Flush(); err != nil {
		return fmt.Errorf("stdout output: flush: %w", err)
	}
	return nil
}
