package processors

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
)

const sessionYAML = "type: session_window\nkey: user\ntimestamp_field: ts\n"

func TestSessionWindowMergeOnBridgingEvent(t *testing.T) {
	p := newWindow(t, sessionYAML+"gap: 10ms\nmax_out_of_orderness: 100ms\n", nil)
	p.runT(t, winEvents("a@0", "a@20", "b@100")).ok(t) // a: [0] and [20], 20 > gap apart
	p.runT(t, winEvents("a@10")).ok(t)                 // within gap of both: one session
	wantWindows(t, "flush", p.flushT(t).rows, winRow("a", 0, 20, 3), winRow("b", 100, 100, 1))
}

func TestSessionWindowCloseAndLateness(t *testing.T) {
	// Output start and end are the first and last event; a gap of exactly
	// gap stays in the session; it closes once the watermark passes last +
	// gap.
	p := newWindow(t, sessionYAML+"gap: 10ms\n", nil)
	if r := p.runT(t, winEvents("a@0", "a@10", "b@5", "a@15")).ok(t); len(r.rows) != 0 {
		t.Fatalf("closed early: %v", r.rows)
	}
	wantWindows(t, "W=16", p.runT(t, winEvents("a@16")).ok(t).rows, winRow("b", 5, 5, 1))
	wantWindows(t, "W=21", p.runT(t, winEvents("a@21")).ok(t).rows)
	wantWindows(t, "W=31", p.runT(t, winEvents("a@31")).ok(t).rows) // 31 - 21 = gap: same session
	r := p.runT(t, winEvents("b@4", "a@42"))
	wantWindows(t, "late", r.errs, "b@4: session_window: late record: event time 4 is behind the watermark 31 (window [4,15) closed)")
	wantWindows(t, "W=42", r.rows, winRow("a", 0, 31, 6))
	wantWindows(t, "flush", p.flushT(t).rows, winRow("a", 42, 42, 1))
}

func TestSessionWindowOutOfOrderJoinsOpenSession(t *testing.T) {
	// A record far behind the watermark still joins an open session it
	// touches: it is late only when it would make a session of its own
	// that is already closed.
	p := newWindow(t, sessionYAML+"gap: 50ms\nmax_out_of_orderness: 40ms\n", nil)
	p.runT(t, winEvents("a@100", "a@150", "a@200")).ok(t) // W = 160
	p.runT(t, winEvents("a@105")).ok(t)                   // 105 + gap < W, inside [100,200]
	r := p.runT(t, winEvents("b@60"))                     // nothing open for b
	wantWindows(t, "late", r.errs, "b@60: session_window: late record: event time 60 is behind the watermark 160 (window [60,111) closed)")
	wantWindows(t, "W=260", p.runT(t, winEvents("a@300")).ok(t).rows, winRow("a", 100, 200, 4))
}

func TestSessionWindowAllowedLateness(t *testing.T) {
	p := newWindow(t, sessionYAML+"gap: 10ms\nallowed_lateness: 5ms\n", nil)
	p.runT(t, winEvents("a@0", "a@12")).ok(t) // W = 12: [0] open until W ≥ 16
	p.runT(t, winEvents("a@8")).ok(t)         // bridges [0] and [12]
	wantWindows(t, "W=30", p.runT(t, winEvents("a@30")).ok(t).rows, winRow("a", 0, 12, 3))
	wantWindows(t, "flush", p.flushT(t).rows, winRow("a", 30, 30, 1))
}

func TestSessionWindowProcessingTime(t *testing.T) {
	clock := kv.NewManualClock(time.UnixMilli(1000))
	b, err := memory.New(kv.Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	p := newWindow(t, "type: session_window\ngap: 10ms\nkey: user\n", b)
	ctx := context.Background()
	p.runT(t, winEvents("a@0")).ok(t)
	clock.Advance(5 * time.Millisecond)
	p.runT(t, winEvents("a@0", "b@0")).ok(t)
	clock.Advance(10 * time.Millisecond) // 1015: a gap of exactly 10 so far
	out, err := p.OnTick(ctx, clock.Now())
	if r := winOut(t, out, err); len(r.rows) != 0 {
		t.Fatalf("closed early: %v", r.rows)
	}
	clock.Advance(time.Millisecond)
	out, err = p.OnTick(ctx, clock.Now())
	rows := winOut(t, out, err).rows
	slices.Sort(rows)
	wantWindows(t, "tick", rows, winRow("a", 1000, 1005, 2), winRow("b", 1005, 1005, 1))
	p.runT(t, winEvents("a@0")).ok(t)
	wantWindows(t, "flush", p.flushT(t).rows, winRow("a", 1016, 1016, 1))
}

func TestSessionWindowRestore(t *testing.T) {
	// Sessions restored from a checkpoint keep growing, merge, and close.
	const yaml = sessionYAML + "gap: 10ms\nmax_out_of_orderness: 50ms\n"
	src, _ := memory.New(kv.Config{})
	p := newWindow(t, yaml, src)
	p.runT(t, winEvents("a@0", "a@30", "b@5")).ok(t)
	dst := windowBackend(t, kv.KeyGroupRange{})
	checkpointInto(t, src, dst)
	q := newWindow(t, yaml, dst)
	q.runT(t, winEvents("a@20", "a@10")).ok(t) // bridges the restored sessions
	wantWindows(t, "after", sortedRows(q.runT(t, winEvents("c@100")).ok(t).rows), winRow("a", 0, 30, 4), winRow("b", 5, 5, 1))
	wantWindows(t, "flush", q.flushT(t).rows, winRow("c", 100, 100, 1))
}
