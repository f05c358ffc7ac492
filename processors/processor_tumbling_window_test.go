package processors

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
)

func TestTumblingWindowEventTime(t *testing.T) {
	p := newWindow(t, "type: tumbling_window\nsize: 10ms\nkey: user\ntimestamp_field: ts\nmax_out_of_orderness: 5ms\n", nil)
	// Out of order within the bound: a@7 after a@12 still counts (W = 7).
	if r := p.runT(t, winEvents("a@1", "a@12", "b@3", "a@7")).ok(t); len(r.rows) != 0 {
		t.Fatalf("emitted before the watermark passed: %v", r.rows)
	}
	// W = 11 closes [0,10) of every key, once.
	wantWindows(t, "W=11", p.runT(t, winEvents("a@16")).ok(t).rows, winRow("a", 0, 10, 2), winRow("b", 0, 10, 1))
	// Records of closed windows are late: error rows with the reason.
	r := p.runT(t, winEvents("a@5", "b@14", "b@4"))
	want := []string{
		"a@5: tumbling_window: late record: event time 5 is behind the watermark 11 (window [0,10) closed)",
		"b@4: tumbling_window: late record: event time 4 is behind the watermark 11 (window [0,10) closed)",
	}
	wantWindows(t, "late", r.errs, want...)
	if len(r.rows) != 0 {
		t.Fatalf("rows %v", r.rows)
	}
	// End of input: every open window, then nothing more.
	wantWindows(t, "flush", p.flushT(t).rows, winRow("a", 10, 20, 2), winRow("b", 10, 20, 1))
	if r := p.flushT(t); len(r.rows) != 0 {
		t.Fatalf("second flush: %v", r.rows)
	}
}

func TestWindowStreamWatermark(t *testing.T) {
	yaml := "type: tumbling_window\nsize: 10ms\nkey: user\ntimestamp_field: ts\nmax_out_of_orderness: 5ms\n"
	// The exchange's instance computes the stream's watermark per row.
	x := newWindow(t, yaml, nil)
	marks := make([]int64, 3)
	last, err := x.Watermarks(winEvents("a@1", "b@20", "a@7"), marks)
	if err != nil || last != 15 || !slices.Equal(marks, []int64{-4, 15, 15}) {
		t.Fatalf("Watermarks = %d %v, %v; want 15 [-4 15 15]", last, marks, err)
	}
	// A worker that saw only a@1 closes a's window when the stream's
	// watermark passes it, without a record of its own.
	p := newWindow(t, yaml, nil)
	if r := p.runT(t, winEvents("a@1")).ok(t); len(r.rows) != 0 {
		t.Fatalf("emitted early: %v", r.rows)
	}
	out, err := p.OnWatermark(context.Background(), 15)
	wantWindows(t, "OnWatermark", winOut(t, out, err).ok(t).rows, winRow("a", 0, 10, 1))
	if out, err := p.OnWatermark(context.Background(), 12); err != nil || len(out) != 0 {
		t.Fatalf("an older watermark emitted %v, %v", out, err)
	}
	// Rows carrying the stream's watermark are judged by it: a@3 is late
	// at the carried 15, though this worker's own records say 9 - 5 = 4.
	b := winEvents("a@9", "a@3")
	b.Watermarks = []int64{15, 15}
	r := p.runT(t, b)
	if len(r.errs) != 2 {
		t.Fatalf("rows behind the carried watermark: errors %v, rows %v", r.errs, r.rows)
	}
}

func TestTumblingWindowRowOrderNotBatching(t *testing.T) {
	// Lateness is judged by the watermark at each row, so the result does
	// not depend on how rows are batched.
	const yaml = "type: tumbling_window\nsize: 10ms\nkey: user\ntimestamp_field: ts\n"
	in := []string{"a@1", "b@2", "a@25", "b@8", "a@3", "b@26", "c@27"}
	whole := newWindow(t, yaml, nil)
	r := whole.runT(t, winEvents(in...))
	got := append(r.rows, r.errs...)
	got = append(got, whole.flushT(t).rows...)
	single := newWindow(t, yaml, nil)
	var one []string
	var oneErrs []string
	for _, e := range in {
		r := single.runT(t, winEvents(e))
		one = append(one, r.rows...)
		oneErrs = append(oneErrs, r.errs...)
	}
	one = append(append(one, oneErrs...), single.flushT(t).rows...)
	if len(r.errs) != 2 || !strings.HasPrefix(r.errs[0], "b@8") || !strings.HasPrefix(r.errs[1], "a@3") {
		t.Fatalf("errors %v", r.errs)
	}
	slices.Sort(got)
	slices.Sort(one)
	wantWindows(t, "row by row", one, got...)
}

func TestTumblingWindowAllowedLateness(t *testing.T) {
	p := newWindow(t, "type: tumbling_window\nsize: 10ms\nkey: user\ntimestamp_field: ts\nallowed_lateness: 5ms\n"+
		"aggregates: [{function: count}, {function: sum, field: v, as: total}, {function: max, field: v}]\n", nil)
	p.runT(t, winEvents("a@1=4", "a@12=1")).ok(t)
	// W = 12 < 10 + 5: [0,10) is still open for late records.
	if r := p.runT(t, winEvents("a@3=9")).ok(t); len(r.rows) != 0 {
		t.Fatalf("rows %v", r.rows)
	}
	wantWindows(t, "W=15", p.runT(t, winEvents("a@15=2")).ok(t).rows, `{"key":"a","window_start":0,"window_end":10,"count":2,"total":13,"max_v":9}`)
	r := p.runT(t, winEvents("a@4"))
	wantWindows(t, "late", r.errs, "a@4: tumbling_window: late record: event time 4 is behind the watermark 15 (window [0,10) closed)")
	wantWindows(t, "flush", p.flushT(t).rows, `{"key":"a","window_start":10,"window_end":20,"count":2,"total":3,"max_v":2}`)
}

func TestTumblingWindowProcessingTime(t *testing.T) {
	clock := kv.NewManualClock(time.UnixMilli(1_000_003))
	b, err := memory.New(kv.Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	p := newWindow(t, "type: tumbling_window\nsize: 10ms\nkey: user\n", b)
	if p.TickInterval() != 10*time.Millisecond {
		t.Fatalf("tick interval %v", p.TickInterval())
	}
	ctx := context.Background()
	p.runT(t, winEvents("a@0", "b@0", "a@0")).ok(t) // ts is ignored: processing time
	clock.Advance(6 * time.Millisecond)             // 1_000_009
	out, err := p.OnTick(ctx, clock.Now())
	if r := winOut(t, out, err); len(r.rows) != 0 {
		t.Fatalf("tick before the end: %v", r.rows)
	}
	p.runT(t, winEvents("b@0")).ok(t)
	clock.Advance(time.Millisecond) // 1_000_010: the window's end
	out, err = p.OnTick(ctx, clock.Now())
	rows := winOut(t, out, err).rows
	slices.Sort(rows)
	wantWindows(t, "tick", rows, winRow("a", 1_000_000, 1_000_010, 2), winRow("b", 1_000_000, 1_000_010, 2))
	out, err = p.OnTick(ctx, clock.Now())
	if r := winOut(t, out, err); len(r.rows) != 0 {
		t.Fatalf("emitted twice: %v", r.rows)
	}
	// Records close due windows too, then flush emits the open one.
	p.runT(t, winEvents("a@0")).ok(t)
	clock.Advance(25 * time.Millisecond)
	wantWindows(t, "by a record", p.runT(t, winEvents("b@0")).ok(t).rows, winRow("a", 1_000_010, 1_000_020, 1))
	wantWindows(t, "flush", p.flushT(t).rows, winRow("b", 1_000_030, 1_000_040, 1))
}

func TestTumblingWindowStateTTL(t *testing.T) {
	// state_ttl drops a key's open windows after that long without a
	// record (processing time): they are never emitted.
	clock := kv.NewManualClock(time.UnixMilli(0))
	b, err := memory.New(kv.Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	p := newWindow(t, "type: tumbling_window\nsize: 10ms\nkey: user\ntimestamp_field: ts\nstate_ttl: 1s\n", b)
	p.runT(t, winEvents("a@1", "b@2")).ok(t)
	clock.Advance(600 * time.Millisecond)
	p.runT(t, winEvents("b@3")).ok(t) // refreshes b only
	clock.Advance(600 * time.Millisecond)
	wantWindows(t, "W=15", p.runT(t, winEvents("c@15")).ok(t).rows, winRow("b", 0, 10, 2))
	wantWindows(t, "flush", p.flushT(t).rows, winRow("c", 10, 20, 1))
}
