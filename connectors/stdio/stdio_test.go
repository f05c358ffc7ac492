package stdio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testConfig(spec component.Spec, vals map[string]any) *component.Config {
	all := map[string]any{}
	for _, f := range spec.Fields {
		if f.Default != nil {
			all[f.Name] = f.Default
		}
	}
	for k, v := range vals {
		all[k] = v
	}
	return component.NewConfig("test.yaml", "input", 1, spec.Name, all, nil)
}

// pipeInput returns a connected stdin input reading from an os.Pipe, and
// the pipe's write end. Both are closed at the end of the test.
func pipeInput(t *testing.T, vals map[string]any) (*stdinInput, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := newStdinInput(testConfig(stdinSpec(), vals), component.Resources{}, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := in.Close(ctx); err != nil {
			t.Error(err)
		}
		w.Close()
		r.Close()
	})
	return in, w
}

func rows(b *message.Batch) []string {
	v := b.Values()
	out := make([]string, v.Len())
	for i := range out {
		out[i] = string(v.Bytes(i))
	}
	return out
}

// readWithin calls Read and fails the test if it does not return in time.
func readWithin(t *testing.T, in *stdinInput, d time.Duration) (*message.Batch, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	b, _, err := in.Read(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read did not return within %s", d)
	}
	return b, err
}

func readToEnd(t *testing.T, in *stdinInput) []*message.Batch {
	t.Helper()
	var out []*message.Batch
	for {
		b, err := readWithin(t, in, 10*time.Second)
		if errors.Is(err, component.ErrEndOfInput) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

func TestStdinBatchesAndEOF(t *testing.T) {
	in, w := pipeInput(t, map[string]any{"batch_size": int64(2), "max_wait": time.Hour})
	if _, err := io.WriteString(w, "a\nb\r\n\nc\nlast"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var got []string
	for _, b := range readToEnd(t, in) {
		if b.NumRows() > 2 {
			t.Fatalf("batch of %d rows", b.NumRows())
		}
		got = append(got, rows(b)...)
	}
	if strings.Join(got, "|") != "a|b||c|last" {
		t.Fatalf("got %q", got)
	}
	// Still at the end.
	if _, err := readWithin(t, in, 10*time.Second); !errors.Is(err, component.ErrEndOfInput) {
		t.Fatalf("read after end: %v", err)
	}
}

func TestStdinNDJSONSkipsBlankLines(t *testing.T) {
	in, w := pipeInput(t, map[string]any{"format": "ndjson"})
	io.WriteString(w, "{\"a\":1}\n\n   \n{\"a\":2}\n")
	w.Close()
	var got []string
	for _, b := range readToEnd(t, in) {
		got = append(got, rows(b)...)
	}
	if strings.Join(got, "|") != `{"a":1}|{"a":2}` {
		t.Fatalf("got %q", got)
	}
}

// TestStdinMaxWait checks that lines flow without end of input and without
// a full batch: a batch is emitted max_wait after its first line.
func TestStdinMaxWait(t *testing.T) {
	const maxWait = 30 * time.Millisecond
	in, w := pipeInput(t, map[string]any{"batch_size": int64(1000), "max_wait": maxWait})
	for round := 0; round < 3; round++ {
		start := time.Now()
		io.WriteString(w, "x\ny\nz\n")
		var got []string
		for len(got) < 3 {
			b, err := readWithin(t, in, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rows(b)...)
		}
		if strings.Join(got, "|") != "x|y|z" {
			t.Fatalf("round %d: got %q", round, got)
		}
		if el := time.Since(start); el < maxWait {
			t.Fatalf("round %d: batch emitted after %s, before max_wait", round, el)
		}
	}
}

func TestStdinMaxWaitZero(t *testing.T) {
	in, w := pipeInput(t, map[string]any{"max_wait": time.Duration(0)})
	io.WriteString(w, "one\n")
	b, err := readWithin(t, in, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows(b), "|") != "one" {
		t.Fatalf("got %q", rows(b))
	}
}

func TestStdinHugeLine(t *testing.T) {
	in, w := pipeInput(t, nil)
	huge := strings.Repeat("h", 3<<20+5)
	errc := make(chan error, 1)
	go func() {
		_, err := io.WriteString(w, "a\n"+huge+"\nb\n")
		w.Close()
		errc <- err
	}()
	var got []string
	for _, b := range readToEnd(t, in) {
		got = append(got, rows(b)...)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != "a" || got[1] != huge || got[2] != "b" {
		t.Fatalf("got %d rows", len(got))
	}
}

func TestStdinReadRespectsContext(t *testing.T) {
	in, _ := pipeInput(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := in.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestStdinCloseStopsReader closes the input while its reader goroutine is
// blocked on a pipe with no data (goleak checks that it is gone).
func TestStdinCloseStopsReader(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	in, err := newStdinInput(testConfig(stdinSpec(), nil), component.Resources{}, r)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "pending\n") // queued, never read
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-in.done:
	default:
		t.Fatal("reader goroutine still running after Close")
	}
}

// TestStdinCloseUninterruptible uses a reader without read deadlines:
// Close returns at once and the goroutine ends at end of input.
func TestStdinCloseUninterruptible(t *testing.T) {
	r, w := io.Pipe()
	in, err := newStdinInput(testConfig(stdinSpec(), nil), component.Resources{}, r)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	select {
	case <-in.done:
	case <-time.After(10 * time.Second):
		t.Fatal("reader goroutine did not end at end of input")
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		f.n++
		return copy(p, "ok\n"), nil
	}
	return 0, errors.New("device on fire")
}

func TestStdinReadError(t *testing.T) {
	in, err := newStdinInput(testConfig(stdinSpec(), map[string]any{"max_wait": time.Duration(0)}), component.Resources{}, &failingReader{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	var got []string
	for {
		b, err := readWithin(t, in, 10*time.Second)
		if err != nil {
			if !strings.Contains(err.Error(), "device on fire") {
				t.Fatalf("got %v", err)
			}
			break
		}
		got = append(got, rows(b)...)
	}
	if strings.Join(got, "|") != "ok" {
		t.Fatalf("rows before the error: %q", got)
	}
}

func TestStdinConfigErrors(t *testing.T) {
	for field, value := range map[string]any{
		"format":     "csv",
		"batch_size": int64(0),
		"max_wait":   -time.Second,
	} {
		_, err := newStdinInput(testConfig(stdinSpec(), map[string]any{field: value}), component.Resources{}, strings.NewReader(""))
		var fe *component.FieldError
		if !errors.As(err, &fe) || fe.Path != "input."+field {
			t.Errorf("%s: got %v", field, err)
		}
	}
}

func TestStdoutOutput(t *testing.T) {
	var buf bytes.Buffer
	out := newStdoutOutput(&buf)
	ctx := context.Background()
	if err := out.Write(ctx, message.FromStrings("x")); !errors.Is(err, component.ErrNotConnected) {
		t.Fatalf("write before connect: %v", err)
	}
	if err := out.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := out.Write(ctx, message.FromStrings("a", "b")); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "a\nb\n" { // flushed per batch
		t.Fatalf("after write: %q", buf.String())
	}

	ids := array.NewInt64Builder(message.Alloc)
	ids.AppendValues([]int64{7}, nil)
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	if err := out.Write(ctx, message.New(array.NewRecordBatch(schema, []arrow.Array{ids.NewArray()}, 1))); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "a\nb\n{\"id\":7}\n" {
		t.Fatalf("got %q", buf.String())
	}
}

type failingWriter struct{ fail bool }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.fail {
		return 0, errors.New("broken pipe")
	}
	return len(p), nil
}

func TestStdoutOutputRecoversAfterError(t *testing.T) {
	fw := &failingWriter{fail: true}
	out := newStdoutOutput(fw)
	ctx := context.Background()
	if err := out.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := out.Write(ctx, message.FromStrings("a")); err == nil {
		t.Fatal("write to a broken writer succeeded")
	}
	fw.fail = false
	if err := out.Write(ctx, message.FromStrings("a")); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

func TestStdioRegistered(t *testing.T) {
	if component.Lookup(component.KindInput, "stdin") == nil {
		t.Fatal("stdin input not registered")
	}
	r := component.Lookup(component.KindOutput, "stdout")
	if r == nil || r.Spec.Delivery != component.DeliveryAtLeastOnce {
		t.Fatal("stdout output not registered as at-least-once")
	}
}
