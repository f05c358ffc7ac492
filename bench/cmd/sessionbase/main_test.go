package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// sessionize runs the baseline on NDJSON text and returns its output
// lines, sorted, and the number of late events.
func sessionize(t *testing.T, input string, gap, ooo int64) ([]string, int64) {
	t.Helper()
	var lines []string
	var line []byte
	z := newSessionizer(gap, ooo, func(user []byte, s *session) {
		line = appendSession(line[:0], user, s)
		lines = append(lines, strings.TrimSuffix(string(line), "\n"))
	})
	if err := run(bufio.NewReader(strings.NewReader(input)), z); err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	return lines, z.late
}

// A tiny input whose sessions are worked out by hand: a gap of exactly
// gap stays in the session, gap+1 starts a new one, an event bridging two
// open sessions merges them, a late event is dropped, an out-of-order one
// that is not late joins its session, and the end of the input flushes
// what is open. gap 10, max out-of-orderness 5.
func TestSessionsByHand(t *testing.T) {
	input := strings.Join([]string{
		`{"user":"a","ts":100}`,
		`{"user":"a","ts":110}`, // gap 10: same session
		`{"user":"b","ts":100}`,
		`{"user":"a","ts":121}`,    // gap 11: new session (watermark 116: [100,110] still open)
		`{"user":"a","ts":115}`,    // bridges [100,110] and [121,121]: [100,121] ×4
		`{"user":"b","ts":200}`,    // watermark 195: b [100,100] closes
		`{"user":"a","ts":150}`,    // a [100,121] closes; 150+10+1 ≤ 195: late
		`{"user":"a","ts":190}`,    // new session
		``,                         // blank lines are skipped
		`{"ts":185, "user":"a"}`,   // another key order (encoding/json path), out of order: joins
		`{"user":"q\"x","ts":300}`, // an escaped user (encoding/json path), flushed at the end
	}, "\n")
	got, late := sessionize(t, input, 10, 5)
	want := []string{
		`{"user":"a","start":100,"end":121,"count":4}`,
		`{"user":"a","start":185,"end":190,"count":2}`,
		`{"user":"b","start":100,"end":100,"count":1}`,
		`{"user":"b","start":200,"end":200,"count":1}`,
		`{"user":"q\"x","start":300,"end":300,"count":1}`,
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("sessions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if late != 1 {
		t.Errorf("late = %d, want 1", late)
	}
}

// With disorder within max out-of-orderness, the streaming sessionizer
// finds exactly the sessions of sorting each user's events and splitting
// them at gaps > gap (what weir's e2e test expects of session_window.yaml).
func TestSessionsEqualSortedSplit(t *testing.T) {
	const gap, ooo = 1000, 3000
	r := rand.New(rand.NewPCG(1, 2))
	type ev struct {
		user    string
		ts, arr int64
	}
	var evs []ev
	for u := range 40 {
		ts := int64(1_700_000_000_000) + r.Int64N(20*gap)
		for range 200 {
			switch r.IntN(6) {
			case 0:
				ts += gap // exactly gap: same session
			case 1:
				ts += gap + 1 // just over: a new one
			case 2:
				ts += r.Int64N(5 * gap)
			default:
				ts += r.Int64N(gap / 2)
			}
			evs = append(evs, ev{user: fmt.Sprintf("u%d", u), ts: ts, arr: ts + r.Int64N(ooo+1)})
		}
	}
	slices.SortStableFunc(evs, func(a, b ev) int { return int(a.arr - b.arr) })
	var in strings.Builder
	byUser := map[string][]int64{}
	for _, e := range evs {
		fmt.Fprintf(&in, "{\"user\":%q,\"ts\":%d}\n", e.user, e.ts)
		byUser[e.user] = append(byUser[e.user], e.ts)
	}
	var want []string
	for u, ts := range byUser {
		slices.Sort(ts)
		start := 0
		for i := 1; i <= len(ts); i++ {
			if i == len(ts) || ts[i]-ts[i-1] > gap {
				want = append(want, fmt.Sprintf(`{"user":%q,"start":%d,"end":%d,"count":%d}`, u, ts[start], ts[i-1], i-start))
				start = i
			}
		}
	}
	slices.Sort(want)
	got, late := sessionize(t, in.String(), gap, ooo)
	if late != 0 {
		t.Errorf("%d late events, want none", late)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%d sessions, want %d (first: %q vs %q)", len(got), len(want), got[:min(3, len(got))], want[:min(3, len(want))])
	}
	t.Logf("%d events, %d sessions", len(evs), len(want))
}

func TestParseEvent(t *testing.T) {
	for _, c := range []struct {
		line string
		user string
		ts   int64
		bad  bool
	}{
		{line: `{"user":"u1","ts":1700000000000}`, user: "u1", ts: 1700000000000},
		{line: `{"user":"u1","ts":-5}`, user: "u1", ts: -5},
		{line: `{"ts":3,"user":"x"}`, user: "x", ts: 3},
		{line: `{"user":"a\u00e9b","ts":3}`, user: "aéb", ts: 3},
		{line: `{"user":"u","ts":2.5}`, user: "u", ts: 2},
		{line: `{"user":"u","ts":1e3}`, user: "u", ts: 1000},
		{line: `{"user":"u"}`, bad: true},
		{line: `{"user":7,"ts":1}`, bad: true},
		{line: `{"user":"u","ts":"x"}`, bad: true},
		{line: `not json`, bad: true},
	} {
		user, ts, err := parseEvent([]byte(c.line))
		if c.bad {
			if err == nil {
				t.Errorf("parseEvent(%s) = %q, %d; want an error", c.line, user, ts)
			}
			continue
		}
		if err != nil || string(user) != c.user || ts != c.ts {
			t.Errorf("parseEvent(%s) = %q, %d, %v; want %q, %d", c.line, user, ts, err, c.user, c.ts)
		}
	}
}

// Output lines are valid JSON carrying the fields as they are.
func TestAppendSessionIsJSON(t *testing.T) {
	for _, u := range []string{"u1", "", `q"x`, `b\s`, "tab\there", "é", "\x01"} {
		line := appendSession(nil, []byte(u), &session{start: -1, end: 1 << 60, count: 3})
		var got struct {
			User              string
			Start, End, Count int64
		}
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if got.User != u || got.Start != -1 || got.End != 1<<60 || got.Count != 3 {
			t.Errorf("%q decodes to %+v", line, got)
		}
	}
}
