package processors

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state"
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

// sessionBenchBatches returns batches of NDJSON-like events {user, ts} as
// bench/cmd/gen -kind sessions makes them: time rising by 0–19 ms per
// event, up to 1 s of disorder, users uniformly random.
func sessionBenchBatches(batches, rows, users int) []*message.Batch {
	r := rand.New(rand.NewPCG(42, 1))
	ts := int64(1_700_000_000_000)
	out := make([]*message.Batch, batches)
	names := make([]string, users)
	for u := range names {
		names[u] = "u" + strconv.Itoa(u)
	}
	for bi := range out {
		us := make([]string, rows)
		tss := make([]int64, rows)
		for i := range rows {
			ts += int64(r.IntN(20))
			us[i] = names[r.IntN(users)]
			tss[i] = ts - int64(r.IntN(1000))
		}
		out[bi] = record([]string{"user", "ts"}, stringCol(us...), int64Col(tss...))
	}
	return out
}

// BenchmarkSessionWindow runs the session_window of
// examples/session_window.yaml over 50 batches of 8192 events of 10 k users
// (one op: a fresh processor, every batch, and the final flush).
func BenchmarkSessionWindow(b *testing.B) {
	const yaml = "type: session_window\nkey: user\ntimestamp_field: ts\ngap: 30s\nmax_out_of_orderness: 1m\n" +
		"key_column: user\nstart_column: start\nend_column: end\naggregates: [{function: count, as: count}]\n"
	in := sessionBenchBatches(50, 8192, 10_000)
	events := 0
	for _, bt := range in {
		events += bt.NumRows()
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		p := newWindow(b, yaml, nil)
		b.StartTimer()
		for _, bt := range in {
			if _, err := p.Process(ctx, bt); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := p.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}

// windowKeys returns the keys that have a value in p's window state
// (empty ones too).
func windowKeys(t *testing.T, p *windowProc) []string {
	t.Helper()
	var keys []string
	if err := p.windows.Range(func(key []byte, _ []winState) bool {
		keys = append(keys, string(key))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

func TestSessionWindowIdleKeys(t *testing.T) {
	// A key whose sessions all closed keeps its slot (and an empty value
	// in the state) while such keys are few; once they outnumber the keys
	// with open sessions (and a few thousand) they are dropped, state
	// included. Neither changes what is emitted.
	p := newWindow(t, sessionYAML+"gap: 10ms\n", nil)
	var in []string
	for i := range 5000 {
		in = append(in, fmt.Sprintf("u%d@%d", i, i%10))
	}
	p.runT(t, winEvents(in...)).ok(t)
	if got := len(windowKeys(t, p)); got != 5000 {
		t.Fatalf("%d keys in the state, want 5000", got)
	}
	// W = 100: every session closes; 5000 idle keys > 4096: swept.
	r := p.runT(t, winEvents("a@100")).ok(t)
	if len(r.rows) != 5000 {
		t.Fatalf("%d sessions closed, want 5000", len(r.rows))
	}
	if got := windowKeys(t, p); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("keys in the state after the sweep: %d, want [a]", len(got))
	}
	if len(p.slotOf) != 1 {
		t.Fatalf("%d slots after the sweep, want 1", len(p.slotOf))
	}
	// Few idle keys are kept, with an empty value; they come back as new.
	wantWindows(t, "a closes", p.runT(t, winEvents("b@105", "a@111")).ok(t).rows, winRow("a", 100, 100, 1))
	wantWindows(t, "b closes", sortedRows(p.runT(t, winEvents("a@122")).ok(t).rows), winRow("a", 111, 111, 1), winRow("b", 105, 105, 1))
	if got := windowKeys(t, p); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("keys in the state: %v, want [a b] (b empty)", got)
	}
	wantWindows(t, "b again", p.runT(t, winEvents("b@135", "a@141")).ok(t).rows, winRow("a", 122, 122, 1))
	wantWindows(t, "flush", p.flushT(t).rows, winRow("b", 135, 135, 1), winRow("a", 141, 141, 1))
	if got := windowKeys(t, p); len(got) != 0 {
		t.Fatalf("keys in the state after flush: %v", got)
	}
}

func TestSessionWindowRestoreIdleKeys(t *testing.T) {
	// Empty values of idle keys in a checkpoint: restored into memory
	// they stay idle keys; into Pebble (no cache) they are deleted.
	const yaml = sessionYAML + "gap: 10ms\n"
	src, _ := memory.New(kv.Config{})
	p := newWindow(t, yaml, src)
	p.runT(t, winEvents("a@0", "b@5")).ok(t)
	wantWindows(t, "a closes", p.runT(t, winEvents("b@11")).ok(t).rows, winRow("a", 0, 0, 1))
	if got := windowKeys(t, p); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("keys in the state: %v", got)
	}
	for _, kind := range []state.BackendKind{state.BackendMemory, state.BackendPebble} {
		dst, err := state.NewBackend(state.BackendConfig{Kind: kind, Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		q := newWindow(t, yaml, dst)
		checkpointInto(t, src, dst)
		wantWindows(t, "after", q.runT(t, winEvents("c@30")).ok(t).rows, winRow("b", 5, 11, 2))
		want := []string{"a", "b", "c"}
		if kind == state.BackendPebble {
			want = []string{"c"}
		}
		if got := windowKeys(t, q); !slices.Equal(got, want) {
			t.Fatalf("%v: keys in the state: %v, want %v", kind, got, want)
		}
		wantWindows(t, "flush", q.flushT(t).rows, winRow("c", 30, 30, 1))
		if got := windowKeys(t, q); len(got) != 0 {
			t.Fatalf("%v: keys in the state after flush: %v", kind, got)
		}
	}
}
