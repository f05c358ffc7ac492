package processors

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

// ackLog records which inputs were acknowledged, in order.
type ackLog struct{ acked []string }

func (l *ackLog) batch(name string, values ...string) *message.Batch {
	b := message.FromStrings(values...)
	b.AddAck(func(context.Context, error) error {
		l.acked = append(l.acked, name)
		return nil
	})
	return b
}

// ack acknowledges what b carries, as the sink would after writing it.
func (l *ackLog) ack(t *testing.T, b *message.Batch) []string {
	t.Helper()
	l.acked = nil
	if err := message.AckAll(context.Background(), b.TakeAcks(), nil); err != nil {
		t.Fatal(err)
	}
	return l.acked
}

func TestBatchCountAndAcks(t *testing.T) {
	var log ackLog
	p := newProc(t, "batch", map[string]any{"count": int64(3)})
	if _, ok := p.(component.AckHolder); !ok {
		t.Fatal("batch must be an AckHolder")
	}
	in1 := log.batch("in1", "a", "b")
	if out := process(t, p, in1); len(out) != 0 {
		t.Fatalf("emitted early: %d batches", len(out))
	}
	if in1.HasAcks() {
		t.Fatal("the batcher must take over the input's acks")
	}
	out := process(t, p, log.batch("in2", "c", "d"))
	if len(out) != 1 {
		t.Fatalf("want 1 batch, got %d", len(out))
	}
	if got := strs(t, out[0], message.ValueColumn); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("batch %q", got)
	}
	// in2's "d" is still buffered: only in1 is acknowledged with this batch.
	if got := log.ack(t, out[0]); !slices.Equal(got, []string{"in1"}) {
		t.Fatalf("acks %v", got)
	}

	// A big input emits several full batches; the remainder waits.
	out = process(t, p, log.batch("in3", "e", "f", "g", "h", "i", "j", "k"))
	var got [][]string
	for _, b := range out {
		got = append(got, strs(t, b, message.ValueColumn))
	}
	if fmt.Sprint(got) != "[[d e f] [g h i]]" {
		t.Fatalf("batches %v", got)
	}
	if acks := log.ack(t, out[0]); !slices.Equal(acks, []string{"in2"}) {
		t.Fatalf("acks of first: %v", acks)
	}
	if acks := log.ack(t, out[1]); len(acks) != 0 {
		t.Fatalf("acks of second: %v", acks)
	}

	fl := p.(component.Flusher)
	out, err := fl.Flush(context.Background())
	if err != nil || len(out) != 1 {
		t.Fatalf("flush: %v, %d batches", err, len(out))
	}
	if got := strs(t, out[0], message.ValueColumn); !slices.Equal(got, []string{"j", "k"}) {
		t.Fatalf("flushed %q", got)
	}
	if acks := log.ack(t, out[0]); !slices.Equal(acks, []string{"in3"}) {
		t.Fatalf("acks of flush: %v", acks)
	}
	if out, err := fl.Flush(context.Background()); err != nil || len(out) != 0 {
		t.Fatalf("empty flush: %v, %d batches", err, len(out))
	}
}

func TestBatchSchemaChangeEmitsBuffer(t *testing.T) {
	var log ackLog
	p := newProc(t, "batch", map[string]any{"count": int64(10)})
	process(t, p, log.batch("in1", "a"))
	other := withMeta(message.FromStrings("b"))
	other.AddAck(func(context.Context, error) error { log.acked = append(log.acked, "in2"); return nil })
	out := process(t, p, other)
	if len(out) != 1 || out[0].Column(message.MetaKey) != nil {
		t.Fatalf("want the buffered batch of the old schema, got %d batches", len(out))
	}
	if acks := log.ack(t, out[0]); !slices.Equal(acks, []string{"in1"}) {
		t.Fatalf("acks %v", acks)
	}
	out, _ = p.(component.Flusher).Flush(context.Background())
	if len(out) != 1 || out[0].Column(message.MetaKey) == nil || out[0].NumRows() != 1 {
		t.Fatalf("flush after schema change: %d batches", len(out))
	}
}

func TestBatchConcatenatesColumns(t *testing.T) {
	p := newProc(t, "batch", map[string]any{"count": int64(4)})
	process(t, p, withMeta(message.FromStrings("a", "b")))
	out := process(t, p, withMeta(message.FromStrings("c", "d")))
	if got := jsonRows(out[0]); !slices.Equal(got, []string{
		`{"__value__":"a","__meta_offset":100,"__meta_key":"k0"}`,
		`{"__value__":"b","__meta_offset":101,"__meta_key":"k1"}`,
		`{"__value__":"c","__meta_offset":100,"__meta_key":"k0"}`,
		`{"__value__":"d","__meta_offset":101,"__meta_key":"k1"}`,
	}) {
		t.Fatalf("rows %q", got)
	}
}

func TestBatchConfig(t *testing.T) {
	p := newProc(t, "batch", nil).(component.Flusher)
	if p.FlushInterval() != time.Second {
		t.Fatalf("default interval %s", p.FlushInterval())
	}
	p = newProc(t, "batch", map[string]any{"timeout": 250 * time.Millisecond}).(component.Flusher)
	if p.FlushInterval() != 250*time.Millisecond {
		t.Fatalf("interval %s", p.FlushInterval())
	}
	p = newProc(t, "batch", map[string]any{"timeout_ms": int64(40)}).(component.Flusher)
	if p.FlushInterval() != 40*time.Millisecond {
		t.Fatalf("timeout_ms interval %s", p.FlushInterval())
	}
	confErr(t, "batch", map[string]any{"count": int64(0)})
	confErr(t, "batch", map[string]any{"timeout_ms": int64(-1)})
}
