package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseSessionLine(t *testing.T) {
	for _, c := range []struct {
		line string
		user string
		v    [3]int64
		bad  bool
	}{
		{line: `{"user":"u1","start":1700000000000,"end":1700000001000,"count":3}`, user: "u1", v: [3]int64{1700000000000, 1700000001000, 3}},
		{line: `{"user":"","start":-1,"end":0,"count":1}`, user: "", v: [3]int64{-1, 0, 1}},
		// Not the fast path's shape: encoding/json.
		{line: `{"start":1,"end":2,"count":3,"user":"x"}`, user: "x", v: [3]int64{1, 2, 3}},
		{line: `{"user":"q\"x","start":1,"end":2,"count":3}`, user: `q"x`, v: [3]int64{1, 2, 3}},
		{line: `{"user": "a", "start": 1, "end": 2, "count": 3}`, user: "a", v: [3]int64{1, 2, 3}},
		{line: `{"user":"a","start":1,"end":2}`, bad: true},
		{line: `{"user":"a","start":1,"end":2,"count":3.5}`, bad: true},
		{line: `{"user":"a","start":1,"end":2,"count":3,}`, bad: true},
		{line: `{"user":"a","start":1,"end":2,"count":3,"x":1}`, user: "a", v: [3]int64{1, 2, 3}},
		{line: `{"word":"a","count":3}`, bad: true},
	} {
		user, v, ok := parseSessionLine([]byte(c.line))
		if c.bad {
			if ok {
				t.Errorf("parseSessionLine(%s) = %q %v, want a failure", c.line, user, v)
			}
			continue
		}
		if !ok || string(user) != c.user || v != c.v {
			t.Errorf("parseSessionLine(%s) = %q %v %v, want %q %v", c.line, user, v, ok, c.user, c.v)
		}
	}
}

func writeLines(t *testing.T, dir, name string, lines ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The fingerprint ignores the order of lines and how they are written,
// and sees a changed, missing or duplicated session.
func TestSessionSum(t *testing.T) {
	dir := t.TempDir()
	lines := []string{
		`{"user":"a","start":1,"end":5,"count":2}`,
		`{"user":"b","start":1,"end":5,"count":2}`,
		`{"user":"a","start":50,"end":50,"count":1}`,
	}
	sum := func(lines ...string) sessionSum {
		s, err := readSessionSum(writeLines(t, dir, "s.ndjson", lines...))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	want := sum(lines...)
	if want.n != 3 {
		t.Fatalf("n = %d, want 3", want.n)
	}
	if got := sum(lines[2], lines[0], `{"count":2,"end":5,"start":1,"user":"b"}`); got != want {
		t.Errorf("reordered: %+v, want %+v", got, want)
	}
	for name, other := range map[string][]string{
		"changed":    {lines[0], lines[1], `{"user":"a","start":50,"end":50,"count":2}`},
		"user moved": {`{"user":"b","start":1,"end":5,"count":2}`, lines[1], lines[2]},
		"missing":    {lines[0], lines[1]},
		"duplicated": {lines[0], lines[1], lines[2], lines[2]},
		"swapped":    {`{"user":"a","start":5,"end":1,"count":2}`, lines[1], lines[2]},
	} {
		if got := sum(other...); got == want {
			t.Errorf("%s: same fingerprint", name)
		}
	}
}

func TestDiffSessions(t *testing.T) {
	s := func(u string, start int64) sessionRec { return sessionRec{u, start, start, 1} }
	want := []sessionRec{s("a", 1), s("a", 2), s("b", 1), s("b", 1)}
	got := []sessionRec{s("a", 2), s("b", 1), s("c", 9)}
	missing, extra := diffSessions(want, got)
	if !slices.Equal(missing, []sessionRec{s("a", 1), s("b", 1)}) || !slices.Equal(extra, []sessionRec{s("c", 9)}) {
		t.Errorf("missing %v, extra %v", missing, extra)
	}
}

// sortedSplit finds the sessions of a tiny input worked out by hand (gap
// 10): a gap of exactly 10 stays in a session, 11 splits, order does not
// matter.
func TestSortedSplit(t *testing.T) {
	in := writeLines(t, t.TempDir(), "ev.ndjson",
		`{"user":"a","ts":110}`,
		`{"user":"b","ts":7}`,
		`{"user":"a","ts":100}`,
		`{"ts":121,"user":"a"}`,
		`{"user":"a","ts":131}`,
		`{"user":"a","ts":142}`,
	)
	got, err := sortedSplitList(in, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []sessionRec{{"a", 100, 110, 2}, {"a", 121, 131, 2}, {"a", 142, 142, 1}, {"b", 7, 7, 1}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	sum, err := sortedSplitSessions(in, 10)
	if err != nil {
		t.Fatal(err)
	}
	out := writeLines(t, t.TempDir(), "out.ndjson", want[3].String(), want[0].String(), want[2].String(), want[1].String())
	if ref, err := readSessionSum(out); err != nil || ref != sum {
		t.Errorf("fingerprint of the written sessions %+v (%v), of sortedSplit %+v", ref, err, sum)
	}
}
