package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"go.uber.org/goleak"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/config"
	"github.com/weir-stream/weir/engine"
	"github.com/weir-stream/weir/internal/backoff"
	"github.com/weir-stream/weir/message"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ---- test components, configured through a registry of live instances ----

var (
	instMu    sync.Mutex
	instances = map[string]any{}
	instSeq   atomic.Int64
)

func put(v any) string {
	id := strconv.FormatInt(instSeq.Add(1), 10)
	instMu.Lock()
	instances[id] = v
	instMu.Unlock()
	return id
}

func get(id string) any {
	instMu.Lock()
	defer instMu.Unlock()
	return instances[id]
}

func init() {
	idField := []component.Field{{Name: "id", Type: component.TypeString}}
	component.RegisterInput(component.Spec{Name: "engine_test_in", Fields: idField},
		func(c *component.Config, _ component.Resources) (component.Input, error) {
			return get(c.String("id")).(component.Input), nil
		})
	component.RegisterProcessor(component.Spec{Name: "engine_test_proc", Fields: idField},
		func(c *component.Config, _ component.Resources) (component.Processor, error) {
			f := get(c.String("id")).(func() component.Processor)
			return f(), nil
		})
	component.RegisterOutput(component.Spec{Name: "engine_test_out", Fields: idField},
		func(c *component.Config, _ component.Resources) (component.Output, error) {
			return get(c.String("id")).(component.Output), nil
		})
}

func compConf(typ string, v any) *component.Config {
	return component.NewConfig("test.yaml", "streams[0]."+typ, 1, typ, map[string]any{"id": put(v)}, nil)
}

// sliceInput emits numbered records "0", "1", ... in batches.
type sliceInput struct {
	total, batch int
	unbounded    bool
	next         int
	reads        atomic.Int64
	acked        atomic.Int64 // records acknowledged with nil
	nacked       atomic.Int64
	ackOrder     []int // first record of each acked batch, in ack order
	mu           sync.Mutex
}

func (in *sliceInput) Connect(context.Context) error { return nil }
func (in *sliceInput) Read(ctx context.Context) (*message.Batch, message.AckFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if !in.unbounded && in.next >= in.total {
		return nil, nil, component.ErrEndOfInput
	}
	in.reads.Add(1)
	first := in.next
	var vals []string
	for i := 0; i < in.batch && (in.unbounded || in.next < in.total); i++ {
		vals = append(vals, strconv.Itoa(in.next))
		in.next++
	}
	n := len(vals)
	return message.FromStrings(vals...), func(_ context.Context, err error) error {
		if err != nil {
			in.nacked.Add(int64(n))
			return nil
		}
		in.acked.Add(int64(n))
		in.mu.Lock()
		in.ackOrder = append(in.ackOrder, first)
		in.mu.Unlock()
		return nil
	}, nil
}
func (in *sliceInput) Close(context.Context) error { return nil }

// memOutput records what it writes; it can fail or block.
type memOutput struct {
	mu     sync.Mutex
	rows   []string
	errs   []string
	failN  int // fail this many writes first
	writes int
	block  chan struct{} // when non-nil, Write waits for it to close
}

func (o *memOutput) Connect(context.Context) error { return nil }
func (o *memOutput) Write(ctx context.Context, b *message.Batch) error {
	if o.block != nil {
		select {
		case <-o.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writes++
	if o.failN > 0 {
		o.failN--
		return errors.New("injected write failure")
	}
	v := b.Values()
	errCol := message.AsBinary(b.Column(message.MetaError))
	for i := 0; i < v.Len(); i++ {
		o.rows = append(o.rows, string(v.Bytes(i)))
		if errCol != nil {
			o.errs = append(o.errs, errCol.String(i))
		}
	}
	return nil
}
func (o *memOutput) Close(context.Context) error { return nil }
func (o *memOutput) snapshot() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.rows...)
}

// funcProc applies fn to every value; fn returning an error fails the row.
type funcProc struct {
	fn func(string) (string, error)
}

func (p funcProc) Process(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
	v := b.Values()
	var good []string
	var bad []string
	var why []string
	for i := 0; i < v.Len(); i++ {
		s, err := p.fn(v.String(i))
		if err != nil {
			bad = append(bad, v.String(i))
			why = append(why, err.Error())
			continue
		}
		good = append(good, s)
	}
	var out []*message.Batch
	if len(good) > 0 {
		out = append(out, message.FromStrings(good...))
	}
	if len(bad) > 0 {
		eb := message.FromStrings(bad...)
		bld := array.NewStringBuilder(message.Alloc)
		bld.AppendValues(why, nil)
		out = append(out, eb.WithColumn(message.MetaError, bld.NewArray()))
	}
	return out, nil
}
func (funcProc) Close(context.Context) error { return nil }

func stream(in component.Input, out component.Output, threads int, procs ...func() component.Processor) config.Stream {
	sc := config.Stream{Name: "t", Input: compConf("engine_test_in", in), Output: compConf("engine_test_out", out)}
	sc.Pipeline.ThreadNum = threads
	for _, p := range procs {
		sc.Pipeline.Processors = append(sc.Pipeline.Processors, compConf("engine_test_proc", p))
	}
	return sc
}

var fastRetry = backoff.Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2}

func runStream(t *testing.T, ctx context.Context, sc config.Stream, opts engine.Options) error {
	t.Helper()
	if opts.Retry.Initial == 0 {
		opts.Retry = fastRetry
	}
	s, err := engine.NewStream(sc, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s.Run(ctx)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// ---- tests ----

func TestOrderPreservedWithThreads(t *testing.T) {
	for _, threads := range []int{1, 2, 4, 7} {
		t.Run(fmt.Sprint(threads), func(t *testing.T) {
			in := &sliceInput{total: 5000, batch: 7}
			out := &memOutput{}
			jitter := func() component.Processor {
				return funcProc{fn: func(s string) (string, error) {
					if rand.IntN(50) == 0 {
						time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
					}
					return "v" + s, nil
				}}
			}
			if err := runStream(t, context.Background(), stream(in, out, threads, jitter, jitter), engine.Options{}); err != nil {
				t.Fatal(err)
			}
			rows := out.snapshot()
			if len(rows) != 5000 {
				t.Fatalf("got %d rows, want 5000", len(rows))
			}
			for i, r := range rows {
				if r != "vv"+strconv.Itoa(i) {
					t.Fatalf("row %d = %q: order not preserved", i, r)
				}
			}
			if in.acked.Load() != 5000 || in.nacked.Load() != 0 {
				t.Fatalf("acked %d nacked %d, want 5000 and 0", in.acked.Load(), in.nacked.Load())
			}
			for i := 1; i < len(in.ackOrder); i++ {
				if in.ackOrder[i] <= in.ackOrder[i-1] {
					t.Fatalf("acks out of order: %v", in.ackOrder[:i+1])
				}
			}
		})
	}
}

func TestBackpressureBlockedOutputStopsInput(t *testing.T) {
	in := &sliceInput{batch: 10, unbounded: true}
	out := &memOutput{block: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	sc := stream(in, out, 3, func() component.Processor { return funcProc{fn: func(s string) (string, error) { return s, nil }} })
	go func() { done <- runStream(t, ctx, sc, engine.Options{QueueDepth: 2}) }()

	// With the output blocked, reads stop after the bounded queues fill.
	waitFor(t, "the pipeline to fill", func() bool { return in.reads.Load() > 5 })
	var last int64
	stable := 0
	for stable < 50 {
		r := in.reads.Load()
		if r == last {
			stable++
		} else {
			stable, last = 0, r
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Every stage holds at most its channel's capacity plus the unit in its
	// hands: reader (1) + read channel (1) + source (1) + source channel (2)
	// + dispatcher (1) + 3 workers × (in 2 + out 2 + 1) + collector (1) +
	// sink channel (2) + the batch being written (1).
	if bound := int64(1 + 1 + 1 + 2 + 1 + 3*(2+2+1) + 1 + 2 + 1); last > bound {
		t.Fatalf("input read %d batches while the output was blocked; bound %d", last, bound)
	}
	if in.acked.Load() != 0 {
		t.Fatalf("%d records acknowledged before the output wrote anything", in.acked.Load())
	}
	close(out.block)
	waitFor(t, "records to flow", func() bool { return in.acked.Load() > 1000 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("graceful stop returned %v", err)
	}
	if got, acked := int64(len(out.snapshot())), in.acked.Load(); got != acked {
		t.Fatalf("output has %d records, input saw %d acknowledged", got, acked)
	}
}

func TestFailingOutputIsRetriedNotDropped(t *testing.T) {
	in := &sliceInput{total: 100, batch: 10}
	out := &memOutput{failN: 5}
	if err := runStream(t, context.Background(), stream(in, out, 1), engine.Options{}); err != nil {
		t.Fatal(err)
	}
	if n := len(out.snapshot()); n != 100 {
		t.Fatalf("wrote %d records, want 100", n)
	}
	if out.writes != 15 {
		t.Fatalf("writes = %d, want 10 batches + 5 failed attempts", out.writes)
	}
}

func TestErrorOutputRouting(t *testing.T) {
	in := &sliceInput{total: 30, batch: 4}
	out := &memOutput{}
	errOut := &memOutput{}
	sc := stream(in, out, 2, func() component.Processor {
		return funcProc{fn: func(s string) (string, error) {
			n, _ := strconv.Atoi(s)
			if n%3 == 0 {
				return "", fmt.Errorf("%d is divisible by 3", n)
			}
			return s, nil
		}}
	}, func() component.Processor {
		return funcProc{fn: func(s string) (string, error) { return "ok" + s, nil }}
	})
	sc.ErrorOutput = compConf("engine_test_out", errOut)
	if err := runStream(t, context.Background(), sc, engine.Options{}); err != nil {
		t.Fatal(err)
	}
	if got := len(out.snapshot()); got != 20 {
		t.Fatalf("output got %d rows, want 20", got)
	}
	bad := errOut.snapshot()
	if len(bad) != 10 {
		t.Fatalf("error output got %d rows, want 10: %v", len(bad), bad)
	}
	for i, r := range bad {
		// failed rows skip the rest of the chain and carry their reason
		if r != strconv.Itoa(3*i) || errOut.errs[i] != r+" is divisible by 3" {
			t.Fatalf("error row %d = %q (%q)", i, r, errOut.errs[i])
		}
	}
	if in.acked.Load() != 30 {
		t.Fatalf("acked %d, want 30", in.acked.Load())
	}
}

// wholeBatchFail fails whole batches: they go to error_output with the error.
type wholeBatchFail struct{}

func (wholeBatchFail) Process(context.Context, *message.Batch) ([]*message.Batch, error) {
	return nil, errors.New("boom")
}
func (wholeBatchFail) Close(context.Context) error { return nil }

func TestProcessorErrorWithoutErrorOutputIsCountedAndAcked(t *testing.T) {
	in := &sliceInput{total: 10, batch: 3}
	out := &memOutput{}
	sc := stream(in, out, 1, func() component.Processor { return wholeBatchFail{} })
	if err := runStream(t, context.Background(), sc, engine.Options{}); err != nil {
		t.Fatal(err)
	}
	if len(out.snapshot()) != 0 || in.acked.Load() != 10 {
		t.Fatalf("out %d rows, acked %d", len(out.snapshot()), in.acked.Load())
	}
}

// dropAll emits nothing: acks must still be delivered, in order.
func TestAcksOfDroppedBatches(t *testing.T) {
	in := &sliceInput{total: 50, batch: 5}
	out := &memOutput{}
	sc := stream(in, out, 3, func() component.Processor {
		return funcProc{fn: func(s string) (string, error) {
			if strings.HasSuffix(s, "7") {
				return s, nil
			}
			return "", errSkip
		}}
	})
	if err := runStream(t, context.Background(), sc, engine.Options{}); err != nil {
		t.Fatal(err)
	}
	if in.acked.Load() != 50 {
		t.Fatalf("acked %d, want 50", in.acked.Load())
	}
}

var errSkip = errors.New("skip")

// holder buffers rows until Flush (like the batch processor).
type holder struct {
	buf      []string
	acks     []message.AckFunc
	interval time.Duration
	flushes  *atomic.Int64
}

func (h *holder) HoldsAcks() {}
func (h *holder) Process(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
	v := b.Values()
	for i := 0; i < v.Len(); i++ {
		h.buf = append(h.buf, strings.Clone(v.String(i)))
	}
	h.acks = append(h.acks, b.TakeAcks()...)
	return nil, nil
}
func (h *holder) Flush(context.Context) ([]*message.Batch, error) {
	h.flushes.Add(1)
	if len(h.buf) == 0 {
		return nil, nil
	}
	b := message.FromStrings(h.buf...)
	b.AddAck(h.acks...)
	h.buf, h.acks = nil, nil
	return []*message.Batch{b}, nil
}
func (h *holder) FlushInterval() time.Duration { return h.interval }
func (h *holder) Close(context.Context) error  { return nil }

func TestFlushAtEndOfStreamAndOnTicks(t *testing.T) {
	var flushes atomic.Int64
	in := &sliceInput{total: 40, batch: 4}
	out := &memOutput{}
	sc := stream(in, out, 2, func() component.Processor { return &holder{flushes: &flushes} },
		func() component.Processor {
			return funcProc{fn: func(s string) (string, error) { return "x" + s, nil }}
		})
	if err := runStream(t, context.Background(), sc, engine.Options{}); err != nil {
		t.Fatal(err)
	}
	rows := out.snapshot()
	if len(rows) != 40 || in.acked.Load() != 40 {
		t.Fatalf("rows %d acked %d; want 40, 40", len(rows), in.acked.Load())
	}
	for _, r := range rows {
		if !strings.HasPrefix(r, "x") {
			t.Fatalf("flushed row %q skipped the rest of the chain", r)
		}
	}

	// Ticks flush timed flushers while the input is still open.
	flushes.Store(0)
	in2 := &sliceInput{total: 3, batch: 1}
	blocking := &blockAfter{sliceInput: in2, release: make(chan struct{})}
	out2 := &memOutput{}
	sc2 := stream(blocking, out2, 1, func() component.Processor { return &holder{flushes: &flushes, interval: 5 * time.Millisecond} })
	done := make(chan error, 1)
	go func() { done <- runStream(t, context.Background(), sc2, engine.Options{}) }()
	waitFor(t, "a timed flush to write held rows", func() bool { return len(out2.snapshot()) == 3 })
	close(blocking.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// blockAfter blocks at the end of its input until released.
type blockAfter struct {
	*sliceInput
	release chan struct{}
}

func (b *blockAfter) Read(ctx context.Context) (*message.Batch, message.AckFunc, error) {
	if b.next >= b.total {
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	return b.sliceInput.Read(ctx)
}

func TestGracefulStopDrainsAndLeavesNoGoroutine(t *testing.T) {
	in := &sliceInput{batch: 16, unbounded: true}
	out := &memOutput{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runStream(t, ctx, stream(in, out, 4, func() component.Processor {
			return funcProc{fn: func(s string) (string, error) { return s, nil }}
		}), engine.Options{})
	}()
	waitFor(t, "records to flow", func() bool { return in.acked.Load() > 500 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after stop = %v", err)
	}
	rows := out.snapshot()
	if int64(len(rows)) != in.acked.Load() {
		t.Fatalf("wrote %d rows but acked %d", len(rows), in.acked.Load())
	}
	if int64(len(rows))+in.nacked.Load() != in.reads.Load()*16 {
		t.Fatalf("read %d batches: %d written + %d nacked records do not add up", in.reads.Load(), len(rows), in.nacked.Load())
	}
	for i, r := range rows {
		if r != strconv.Itoa(i) {
			t.Fatalf("row %d = %s", i, r)
		}
	}
}

func TestShutdownTimeoutWhenOutputHangs(t *testing.T) {
	in := &sliceInput{batch: 1, unbounded: true}
	out := &memOutput{block: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runStream(t, ctx, stream(in, out, 1), engine.Options{ShutdownTimeout: 50 * time.Millisecond})
	}()
	waitFor(t, "the pipeline to fill", func() bool { return in.reads.Load() > 3 })
	cancel()
	err := <-done
	if !errors.Is(err, engine.ErrShutdownTimeout) {
		t.Fatalf("Run = %v, want ErrShutdownTimeout", err)
	}
	if in.acked.Load() != 0 || in.nacked.Load() == 0 {
		t.Fatalf("acked %d nacked %d: unwritten batches must be nacked", in.acked.Load(), in.nacked.Load())
	}
}

// permanentOutput rejects batches that contain "bad".
type permanentOutput struct{ memOutput }

func (o *permanentOutput) Write(ctx context.Context, b *message.Batch) error {
	v := b.Values()
	for i := 0; i < v.Len(); i++ {
		if v.String(i) == "3" {
			o.mu.Lock()
			o.writes++
			o.mu.Unlock()
			return component.Permanent(errors.New("record 3 is not acceptable"))
		}
	}
	return o.memOutput.Write(ctx, b)
}

func TestPermanentWriteErrorGoesToErrorOutput(t *testing.T) {
	in := &sliceInput{total: 10, batch: 2}
	out := &permanentOutput{}
	errOut := &memOutput{}
	sc := stream(in, out, 1)
	sc.ErrorOutput = compConf("engine_test_out", errOut)
	if err := runStream(t, context.Background(), sc, engine.Options{}); err != nil {
		t.Fatal(err)
	}
	if got := errOut.snapshot(); len(got) != 2 || got[0] != "2" || got[1] != "3" {
		t.Fatalf("error output = %v, want the rejected batch [2 3]", got)
	}
	if !strings.Contains(errOut.errs[0], "record 3 is not acceptable") {
		t.Fatalf("error text = %q", errOut.errs[0])
	}
	if len(out.snapshot()) != 8 || in.acked.Load() != 10 || out.writes != 5 {
		t.Fatalf("out %d rows, acked %d, writes %d", len(out.snapshot()), in.acked.Load(), out.writes)
	}
}

// brokenInput cannot connect, for good.
type brokenInput struct{ sliceInput }

func (*brokenInput) Connect(context.Context) error {
	return component.Permanent(errors.New("no such file"))
}

func TestPermanentInputErrorFailsTheStream(t *testing.T) {
	err := runStream(t, context.Background(), stream(&brokenInput{}, &memOutput{}, 2), engine.Options{})
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("Run = %v, want the input's error", err)
	}
}
