package processors

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/weir-stream/weir/connectors/file"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/config"
	"github.com/weir-stream/weir/engine"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state"
	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
)

// Tests shared by the window processors: keys, restore, config and the
// engine. Each window type has its own file for its semantics.

// newWindow builds a window processor from YAML (defaults applied) over
// backend b (nil: a fresh memory backend), closing both after the test.
func newWindow(t testing.TB, yaml string, b kv.Backend) *windowProc {
	t.Helper()
	conf, err := config.ParseComponent(component.KindProcessor, yaml)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if b == nil {
		if b, err = memory.New(kv.Config{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = b.Close() })
	cfg := b.Config()
	p, err := component.Lookup(component.KindProcessor, conf.Type).NewProcessor(conf,
		component.Resources{State: b, KeyGroups: cfg.KeyGroups, MaxKeyGroups: cfg.MaxKeyGroups})
	if err != nil {
		t.Fatalf("new %s: %v", conf.Type, err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p.(*windowProc)
}

// windowConfErr returns the constructor's error for yaml (failing if
// there is none).
func windowConfErr(t *testing.T, yaml string) string {
	t.Helper()
	conf, err := config.ParseComponent(component.KindProcessor, yaml)
	if err != nil {
		return err.Error()
	}
	p, err := component.Lookup(component.KindProcessor, conf.Type).NewProcessor(conf, component.Resources{})
	if err == nil {
		_ = p.Close(context.Background())
		t.Fatalf("%q: want an error", yaml)
	}
	return err.Error()
}

// winEvents builds a batch of events from "user@ts" or "user@ts=v":
// columns user (string), ts and v (int64; v is 1 when not given).
func winEvents(specs ...string) *message.Batch {
	users := make([]string, len(specs))
	ts := make([]int64, len(specs))
	vs := make([]int64, len(specs))
	for i, s := range specs {
		u, rest, _ := strings.Cut(s, "@")
		t, v, hasV := strings.Cut(rest, "=")
		users[i] = u
		ts[i], _ = strconv.ParseInt(t, 10, 64)
		vs[i] = 1
		if hasV {
			vs[i], _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return record([]string{"user", "ts", "v"}, stringCol(users...), int64Col(ts...), int64Col(vs...))
}

// winResult is what a processor call returned: the rows of its data
// batches (JSON), and its failed rows as "user@ts: error".
type winResult struct {
	rows []string
	errs []string
}

func winOut(t testing.TB, out []*message.Batch, err error) winResult {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	var r winResult
	for _, b := range out {
		if !b.IsError() {
			r.rows = append(r.rows, jsonRows(b)...)
			continue
		}
		users, why := strs(t, b, "user"), strs(t, b, message.MetaError)
		ts := b.Column("ts").(interface{ Value(int) int64 })
		for i := range users {
			r.errs = append(r.errs, fmt.Sprintf("%s@%d: %s", users[i], ts.Value(i), why[i]))
		}
	}
	return r
}

// runT runs b through p; flushT flushes p.
func (p *windowProc) runT(t testing.TB, b *message.Batch) winResult {
	t.Helper()
	out, err := p.Process(context.Background(), b)
	return winOut(t, out, err)
}

func (p *windowProc) flushT(t testing.TB) winResult {
	t.Helper()
	out, err := p.Flush(context.Background())
	return winOut(t, out, err)
}

// winRow renders an output row of the default columns with a count.
func winRow(key string, start, end, count int64) string {
	return fmt.Sprintf(`{"key":%q,"window_start":%d,"window_end":%d,"count":%d}`, key, start, end, count)
}

// sortedRows sorts rows (windows closed together by timers come in no
// particular order) and returns them.
func sortedRows(rows []string) []string {
	slices.Sort(rows)
	return rows
}

// wantWindows compares rows with want, in order.
func wantWindows(t testing.TB, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n%s\nwant:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// ok fails the test if rows failed.
func (r winResult) ok(t testing.TB) winResult {
	t.Helper()
	if len(r.errs) > 0 {
		t.Fatalf("unexpected failed rows: %v", r.errs)
	}
	return r
}

func TestWindowKeysMatchState(t *testing.T) {
	// Keys gives the exact bytes Process keys state by: the exchange must
	// route rows to the worker owning that key group.
	for _, yaml := range []string{
		"type: tumbling_window\nsize: 10ms\nkey: user\ntimestamp_field: ts\n",
		"type: session_window\ngap: 10ms\nkey: 'user + \"!\"'\ntimestamp_field: ts\n",
		"type: sliding_window\nsize: 20ms\nslide: 10ms\ntimestamp_field: ts\n",
	} {
		p := newWindow(t, yaml, nil)
		b := winEvents("a@1", "b@2", "a@3")
		var keys []string
		if err := p.Keys(b, func(_ int, key []byte) { keys = append(keys, string(key)) }); err != nil {
			t.Fatal(err)
		}
		p.runT(t, b).ok(t)
		var stored []string
		if err := p.windows.Range(func(key []byte, _ []winState) bool {
			stored = append(stored, string(key))
			return true
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(stored)
		uniq := slices.Compact(slices.Sorted(slices.Values(keys)))
		if !slices.Equal(stored, uniq) {
			t.Fatalf("%s: Keys gave %q, state holds %q", yaml, keys, stored)
		}
	}
}

func TestWindowKeyErrorsAndOutputColumns(t *testing.T) {
	// A null key fails its row; without key there is no key column; the
	// output columns are configurable and typed.
	p := newWindow(t, "type: tumbling_window\nsize: 10ms\nkey: 'user == \"x\" ? nil : user'\ntimestamp_field: ts\n"+
		"key_column: u\nstart_column: s\nend_column: e\naggregates: [{function: count, as: n}, {function: sum, field: v}]\n", nil)
	r := p.runT(t, winEvents("a@1=5", "x@2", "a@3=7"))
	if len(r.errs) != 1 || !strings.HasPrefix(r.errs[0], "x@2: tumbling_window: key:") {
		t.Fatalf("errors %v", r.errs)
	}
	out, err := p.Flush(context.Background())
	if err != nil || len(out) != 1 {
		t.Fatalf("flush: %v, %d batches", err, len(out))
	}
	if got := schemaString(out[0]); got != "u:utf8,s:int64,e:int64,n:int64,sum_v:int64" {
		t.Fatalf("schema %s", got)
	}
	wantWindows(t, "flush", jsonRows(out[0]), `{"u":"a","s":0,"e":10,"n":2,"sum_v":12}`)

	g := newWindow(t, "type: tumbling_window\nsize: 10ms\ntimestamp_field: ts\nmax_out_of_orderness: 1s\n", nil)
	g.runT(t, winEvents("a@1", "b@2", "c@12")).ok(t)
	wantWindows(t, "global", g.flushT(t).rows, `{"window_start":0,"window_end":10,"count":2}`, `{"window_start":10,"window_end":20,"count":1}`)
}

func TestWindowBadTimestamps(t *testing.T) {
	p := newWindow(t, "type: tumbling_window\nsize: 1s\nkey: user\ntimestamp_field: when\nmax_out_of_orderness: 1s\n", nil)
	b := record([]string{"user", "when", "ts"}, stringCol("a", "b", "c", "d"),
		stringCol("1970-01-01T00:00:01.5Z", "soon", "2500", "1970-01-01 00:00:02"), int64Col(0, 0, 0, 0))
	r := p.runT(t, b)
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], `"soon" is neither epoch milliseconds nor an ISO 8601 time`) {
		t.Fatalf("errors %v", r.errs)
	}
	wantWindows(t, "flush", p.flushT(t).rows, winRow("a", 1000, 2000, 1), winRow("c", 2000, 3000, 1), winRow("d", 2000, 3000, 1))
	// A batch without the column fails every row, with the reason.
	r = p.runT(t, winEvents("a@1"))
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], `no timestamp_field column "when"`) {
		t.Fatalf("errors %v", r.errs)
	}
}

func TestWindowConfigErrors(t *testing.T) {
	for yaml, want := range map[string]string{
		"type: tumbling_window\n":                                                              "size",
		"type: tumbling_window\nsize: 1s\ninterval: 1s\n":                                      "interval",
		"type: tumbling_window\nsize: 1500us\n":                                                "whole number of milliseconds",
		"type: tumbling_window\nsize: 1s\nallowed_lateness: 1s\n":                              "needs timestamp_field",
		"type: tumbling_window\nsize: 1s\nmax_out_of_orderness: 1s\n":                          "needs timestamp_field",
		"type: tumbling_window\nsize: 1s\nkey: k\nkey_column: window_end\n":                    "window_end",
		"type: tumbling_window\nsize: 1s\naggregates: [{function: count, as: window_start}]\n": "window_start",
		"type: sliding_window\nsize: 1s\n":                                                     "slide",
		"type: sliding_window\nsize: 1s\nslide: 2s\n":                                          "must not exceed size",
		"type: sliding_window\nwindow_size: 2\nslide_size: 3\ninterval: 1s\n":                  "slide_size",
		"type: sliding_window\nsize: 1s\nslide: 1s\nwindow_size: 2\n":                          "either size and slide",
		"type: session_window\n":                                                               "gap",
		"type: session_window\ngap: 0s\n":                                                      "at least 1ms",
	} {
		if msg := windowConfErr(t, yaml); !strings.Contains(msg, want) {
			t.Errorf("%q: error %q does not mention %q", yaml, msg, want)
		}
	}
}

func TestWindowArkFlowBufferFields(t *testing.T) {
	// ArkFlow's buffer: windows map onto the processors' time parameters.
	for yaml, want := range map[string][3]int64{ // size, slide, gap (ms)
		"type: tumbling_window\ninterval: 2s\n":                                {2000, 2000, 0},
		"type: sliding_window\nwindow_size: 10\nslide_size: 2\ninterval: 1s\n": {5000, 1000, 0},
		"type: session_window\ngap: 5s\n":                                      {0, 0, 5000},
		"type: session_window\ngap: 250\n":                                     {0, 0, 250}, // integer ms
	} {
		p := newWindow(t, yaml, nil)
		if got := [3]int64{p.size, p.slide, p.gap}; got != want {
			t.Errorf("%q: size, slide, gap = %v, want %v", yaml, got, want)
		}
		if p.eventTime || p.TickInterval() <= 0 {
			t.Errorf("%q: ArkFlow buffers are processing-time windows with ticks", yaml)
		}
	}
	// And as a stream's buffer section.
	root, err := config.Parse("test.yaml", []byte("streams:\n  - input: {type: file, path: x}\n"+
		"    buffer: {type: sliding_window, window_size: 4, slide_size: 2, interval: 1s}\n"+
		"    output: {type: file, path: y}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if b := root.Streams[0].Buffer; b == nil || b.Type != "sliding_window" {
		t.Fatalf("buffer %+v", b)
	}
}

func TestWindowControlInterfaces(t *testing.T) {
	p := newWindow(t, "type: session_window\ngap: 1s\ntimestamp_field: ts\n", nil)
	var proc component.Processor = p
	if _, ok := proc.(component.BarrierListener); ok {
		t.Error("windows emit nothing at barriers: no BarrierListener")
	}
	if _, ok := proc.(component.Keyed); !ok {
		t.Error("not Keyed")
	}
	if f, ok := proc.(component.Flusher); !ok || f.FlushInterval() != 0 {
		t.Error("want a Flusher flushed only at the end of input")
	}
	if p.TickInterval() != 0 {
		t.Error("event-time windows need no ticks")
	}
	q := newWindow(t, "type: tumbling_window\nsize: 1h\n", nil)
	if q.TickInterval() != 100*time.Millisecond {
		t.Errorf("tick interval %v", q.TickInterval())
	}
}

// windowBackend returns an empty memory backend holding key groups r (the
// zero range: all).
func windowBackend(t *testing.T, r kv.KeyGroupRange) kv.Backend {
	t.Helper()
	b, err := memory.New(kv.Config{KeyGroups: r})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkpointInto checkpoints src (a snapshot written out as one entry file
// per key group) and restores every dst from it, each with the key
// groups it holds (another parallelism, when they differ from src's).
func checkpointInto(t *testing.T, src kv.Backend, dsts ...kv.Backend) {
	t.Helper()
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	for _, dst := range dsts {
		r := dst.Config().KeyGroups
		for kg := r.Start; kg < r.End; kg++ {
			var buf bytes.Buffer
			if err := kv.WriteKeyGroup(&buf, snap, kg); err != nil {
				t.Fatal(err)
			}
			if err := dst.Restore(&buf); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestWindowRestore(t *testing.T) {
	// A checkpoint (snapshot → entry files → restore) carries the open
	// windows and the watermark: the new instance closes the restored
	// windows on time (its timers are rebuilt from the state), never
	// emits a window twice, and judges lateness by the restored watermark.
	const yaml = "type: tumbling_window\nsize: 10ms\nkey: user\ntimestamp_field: ts\n"
	src, _ := memory.New(kv.Config{})
	p := newWindow(t, yaml, src)
	wantWindows(t, "before", p.runT(t, winEvents("a@1", "b@12", "a@15")).ok(t).rows, winRow("a", 0, 10, 1))

	// Built before the restore, as the engine does.
	dst := windowBackend(t, kv.KeyGroupRange{})
	q := newWindow(t, yaml, dst)
	checkpointInto(t, src, dst)
	r := q.runT(t, winEvents("a@3"))
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "late record: event time 3 is behind the watermark 15 (window [0,10) closed)") {
		t.Fatalf("a record of a window emitted before the checkpoint: %v", r.errs)
	}
	wantWindows(t, "after", sortedRows(q.runT(t, winEvents("c@25")).ok(t).rows), winRow("a", 10, 20, 1), winRow("b", 10, 20, 1))
	wantWindows(t, "flush", q.flushT(t).rows, winRow("c", 20, 30, 1))

	// Restored into two instances holding half the key groups each: every
	// open window is still emitted exactly once.
	const sessions = "type: session_window\ngap: 10ms\nkey: user\ntimestamp_field: ts\nmax_out_of_orderness: 100ms\n"
	src2, _ := memory.New(kv.Config{})
	p2 := newWindow(t, sessions, src2)
	var in []string
	for i := 0; i < 40; i++ {
		in = append(in, fmt.Sprintf("u%d@%d", i, i), fmt.Sprintf("u%d@%d", i, i+10))
	}
	p2.runT(t, winEvents(in...)).ok(t)
	lo, hi := windowBackend(t, kv.KeyGroupRange{Start: 0, End: 64}), windowBackend(t, kv.KeyGroupRange{Start: 64, End: 128})
	checkpointInto(t, src2, lo, hi)
	var rows []string
	for _, b := range []kv.Backend{lo, hi} {
		rows = append(rows, newWindow(t, sessions, b).flushT(t).rows...)
	}
	slices.Sort(rows)
	var want []string
	for i := 0; i < 40; i++ {
		want = append(want, winRow(fmt.Sprint("u", i), int64(i), int64(i+10), 2))
	}
	slices.Sort(want)
	wantWindows(t, "split restore", rows, want...)
}

func TestWindowPebbleBackend(t *testing.T) {
	// The same results when windows are encoded (CBOR) in Pebble.
	for _, yaml := range []string{
		"type: tumbling_window\nsize: 10ms\nkey: user\ntimestamp_field: ts\nmax_out_of_orderness: 5ms\n" +
			"aggregates: [{function: count}, {function: avg, field: v}, {function: last, field: user}]\n",
		"type: sliding_window\nsize: 20ms\nslide: 5ms\nkey: user\ntimestamp_field: ts\nallowed_lateness: 5ms\n",
		"type: session_window\ngap: 10ms\nkey: user\ntimestamp_field: ts\nmax_out_of_orderness: 20ms\n" +
			"aggregates: [{function: min, field: v}, {function: sum, field: v}]\n",
	} {
		var results [2][]string
		for i, kind := range []state.BackendKind{state.BackendMemory, state.BackendPebble} {
			b, err := state.NewBackend(state.BackendConfig{Kind: kind, Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			p := newWindow(t, yaml, b)
			for _, in := range [][]string{{"a@1=3", "b@4=1", "a@12=5"}, {"a@2=7", "b@30=2", "a@9"}, {"c@3", "a@50=4"}} {
				r := p.runT(t, winEvents(in...))
				results[i] = append(append(results[i], r.rows...), r.errs...)
			}
			results[i] = append(results[i], p.flushT(t).rows...)
		}
		if len(results[0]) < 4 || strings.Join(results[0], "\n") != strings.Join(results[1], "\n") {
			t.Fatalf("memory:\n%s\npebble:\n%s", strings.Join(results[0], "\n"), strings.Join(results[1], "\n"))
		}
	}
}

// ---- in a stream ----

// windowStream runs a one-stream config body with IN and OUT replaced by
// temp files (IN holding input) and returns the output lines. Every
// completed checkpoint barrier triggers the next one.
func windowStream(t *testing.T, body, input string) []string {
	t.Helper()
	rows, _ := windowStreamErrors(t, body, input)
	return rows
}

// windowStreamErrors is windowStream that also returns the lines of the
// error output (OUT.errors), if the config has one.
func windowStreamErrors(t *testing.T, body, input string) (rows, errs []string) {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.ndjson"), filepath.Join(dir, "out.ndjson")
	if err := os.WriteFile(in, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	body = strings.NewReplacer("IN", in, "OUT", out).Replace(body)
	root, err := config.Parse("test.yaml", []byte("streams:\n  - "+strings.ReplaceAll(strings.TrimSpace(body), "\n", "\n    ")+"\n"),
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	barriers := 0
	opts := engine.Options{OnBarrier: func(_ context.Context, s *engine.Stream, b *engine.Barrier) {
		b.Release()
		barriers++
		s.TriggerCheckpoint(b.ID + 1)
	}}
	s, err := engine.NewStream(root.Streams[0], opts)
	if err != nil {
		t.Fatal(err)
	}
	s.TriggerCheckpoint(1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("run: %v", err)
	}
	if barriers == 0 {
		t.Fatal("no checkpoint barrier passed the stream")
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	rows = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if data, err = os.ReadFile(out + ".errors"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if l != "" {
				errs = append(errs, l)
			}
		}
	}
	return rows, errs
}

// disorderedEvents returns NDJSON events {"user","ts"} of users, each with
// bursts separated by pauses, in an order where no event arrives more than
// maxDelay after a later-stamped one.
func disorderedEvents(seed uint64, users int, maxDelay int64) (string, int) {
	r := rand.New(rand.NewPCG(seed, 3))
	type event struct {
		user      string
		ts, order int64
	}
	var evs []event
	for u := 0; u < users; u++ {
		t := int64(r.IntN(1000))
		for range 10 + r.IntN(30) {
			evs = append(evs, event{user: fmt.Sprint("u", u), ts: t})
			if r.IntN(5) == 0 {
				t += 500 + int64(r.IntN(3000)) // a pause
			} else {
				t += int64(r.IntN(120))
			}
		}
	}
	for i := range evs {
		evs[i].order = evs[i].ts + r.Int64N(maxDelay+1)
	}
	slices.SortStableFunc(evs, func(a, b event) int { return int(a.order - b.order) })
	var sb strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&sb, "{\"user\":%q,\"ts\":%d}\n", e.user, e.ts)
	}
	return sb.String(), len(evs)
}

func TestWindowsInStream(t *testing.T) {
	// Every window type over a disordered input (within the out-of-order
	// bound, so nothing is late), with checkpoints: thread_num 1 and 4
	// produce the same windows, each once.
	input, n := disorderedEvents(11, 30, 300)
	for _, c := range []struct {
		proc    string
		perItem int // windows each event is counted in
	}{
		{"{type: tumbling_window, size: 1s}", 1},
		{"{type: sliding_window, size: 600ms, slide: 200ms}", 3},
		{"{type: session_window, gap: 250ms}", 1},
	} {
		var sets [][]string
		for _, threads := range []int{1, 4} {
			body := fmt.Sprintf(`
input: {type: file, path: IN, format: ndjson, batch_size: 16}
pipeline:
  thread_num: %d
  processors:
    - {type: json_to_arrow, fields: [user, ts]}
    - %s
output: {type: file, path: OUT, format: ndjson}
error_output: {type: file, path: OUT.errors}
`, threads, strings.Replace(c.proc, "}", ", key: user, timestamp_field: ts, max_out_of_orderness: 300ms, key_column: user}", 1))
			rows := windowStream(t, body, input)
			total := 0
			for _, l := range rows {
				i := strings.LastIndex(l, `"count":`)
				k, err := strconv.Atoi(strings.TrimSuffix(l[i+len(`"count":`):], "}"))
				if i < 0 || err != nil {
					t.Fatalf("%s: line %q", c.proc, l)
				}
				total += k
			}
			if total != n*c.perItem {
				t.Fatalf("%s threads=%d: windows count %d events, want %d", c.proc, threads, total, n*c.perItem)
			}
			slices.Sort(rows)
			if len(slices.Compact(slices.Clone(rows))) != len(rows) {
				t.Fatalf("%s threads=%d: a window was emitted twice", c.proc, threads)
			}
			sets = append(sets, rows)
		}
		if !slices.Equal(sets[0], sets[1]) {
			t.Fatalf("%s: thread_num 1 and 4 made different windows (%d and %d)", c.proc, len(sets[0]), len(sets[1]))
		}
	}
}

func TestWindowsLateRecordsIndependentOfThreads(t *testing.T) {
	// Disorder beyond max_out_of_orderness makes late records. With
	// thread_num > 1 the keyed exchange hands every worker the watermark of
	// the whole stream (component.Watermarker), so each record is late, or
	// not, exactly as with one worker: windows and late records are the
	// same for every thread_num. (With per-worker watermarks a worker whose
	// keys lag would accept records one worker rejects, and a worker that
	// stops receiving records would keep its windows open.)
	input, n := disorderedEvents(5, 40, 900)
	for _, proc := range []string{
		"{type: tumbling_window, size: 1s}",
		"{type: session_window, gap: 250ms}",
	} {
		var outs, errs [][]string
		for _, threads := range []int{1, 3} {
			body := fmt.Sprintf(`
input: {type: file, path: IN, format: ndjson, batch_size: 16}
pipeline:
  thread_num: %d
  processors:
    - {type: json_to_arrow, fields: [user, ts]}
    - %s
output: {type: file, path: OUT, format: ndjson}
error_output: {type: file, path: OUT.errors, format: ndjson}
`, threads, strings.Replace(proc, "}", ", key: user, timestamp_field: ts, max_out_of_orderness: 200ms, key_column: user}", 1))
			rows, late := windowStreamErrors(t, body, input)
			slices.Sort(rows)
			slices.Sort(late)
			outs, errs = append(outs, rows), append(errs, late)
		}
		if len(errs[0]) == 0 || len(errs[0]) >= n/2 {
			t.Fatalf("%s: %d late records of %d: the input should make some", proc, len(errs[0]), n)
		}
		if !slices.Equal(errs[0], errs[1]) {
			t.Fatalf("%s: thread_num 1 and 3 found different late records (%d and %d)", proc, len(errs[0]), len(errs[1]))
		}
		if !slices.Equal(outs[0], outs[1]) {
			t.Fatalf("%s: thread_num 1 and 3 made different windows (%d and %d)", proc, len(outs[0]), len(outs[1]))
		}
	}
}

func TestTimerHeapOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h timerHeap
	var want []int64
	for round := 0; round < 50; round++ {
		for range r.IntN(100) {
			at := r.Int64N(1000)
			h.push(timer{at: at})
			want = append(want, at)
		}
		slices.Sort(want)
		for range r.IntN(len(want) + 1) {
			if got := h.pop().at; got != want[0] {
				t.Fatalf("pop %d, want %d", got, want[0])
			}
			want = want[1:]
		}
		if len(h) != len(want) {
			t.Fatalf("%d timers, want %d", len(h), len(want))
		}
	}
}
