package processors

import (
	"testing"
)

func TestSlidingWindowMembership(t *testing.T) {
	// size 30, slide 10: a record belongs to the three windows whose start
	// is in (t-30, t], aligned to the epoch (negative starts included).
	p := newWindow(t, "type: sliding_window\nsize: 30ms\nslide: 10ms\nkey: user\ntimestamp_field: ts\n", nil)
	p.runT(t, winEvents("a@25")).ok(t) // [0,30) [10,40) [20,50)
	wantWindows(t, "W=35", p.runT(t, winEvents("a@35")).ok(t).rows, winRow("a", 0, 30, 1))
	// a@15 belongs to [-10,20) and [0,30), closed, and [10,40), open: it
	// counts there only. a@5's windows have all closed: it is late.
	r := p.runT(t, winEvents("a@15", "a@5"))
	wantWindows(t, "late", r.errs, "a@5: sliding_window: late record: event time 5 is behind the watermark 35 (window [0,30) closed)")
	if len(r.rows) != 0 {
		t.Fatalf("rows %v", r.rows)
	}
	wantWindows(t, "flush", p.flushT(t).rows, winRow("a", 10, 40, 3), winRow("a", 20, 50, 2), winRow("a", 30, 60, 1))

	// Before the epoch: windows are still aligned to multiples of slide.
	q := newWindow(t, "type: sliding_window\nsize: 20ms\nslide: 10ms\ntimestamp_field: ts\nkey: user\n", nil)
	q.runT(t, winEvents("b@-5")).ok(t)
	wantWindows(t, "negative", q.flushT(t).rows, winRow("b", -20, 0, 1), winRow("b", -10, 10, 1))
}

func TestSlidingWindowAllowedLatenessAndAggregates(t *testing.T) {
	p := newWindow(t, "type: sliding_window\nsize: 20ms\nslide: 10ms\nkey: user\ntimestamp_field: ts\n"+
		"allowed_lateness: 10ms\naggregates: [{function: avg, field: v, as: avg}, {function: first, field: v}, {function: last, field: v}]\n", nil)
	// W = 28 closes [-10,10) (28 ≥ 10 + 10); [0,20) stays open until 30.
	wantWindows(t, "W=28", p.runT(t, winEvents("a@5=2", "a@12=4", "a@28=6")).ok(t).rows,
		`{"key":"a","window_start":-10,"window_end":10,"avg":2,"first_v":2,"last_v":2}`)
	p.runT(t, winEvents("a@1=10")).ok(t) // behind the watermark but allowed: joins [0,20) only
	wantWindows(t, "W=30", p.runT(t, winEvents("a@30=1")).ok(t).rows,
		`{"key":"a","window_start":0,"window_end":20,"avg":5.333333333333333,"first_v":2,"last_v":10}`)
}
