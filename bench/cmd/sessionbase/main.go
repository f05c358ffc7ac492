// Command sessionbase is the hand-written baseline of the session window
// benchmark: one goroutine reads NDJSON events {"user":U,"ts":EPOCH_MS}
// with bufio, groups each user's events into event-time sessions as
// examples/session_window.yaml does, and writes one NDJSON line per session
//
//	{"user":U,"start":MS,"end":MS,"count":N}
//
// (start and end: the timestamps of the session's first and last event),
// the format weir's example writes, so the driver can compare the two.
//
//	sessionbase [-gap MS] [-ooo MS] IN OUT
//
// Parsing: a hand parser for lines shaped exactly as bench/cmd/gen writes
// them ({"user":"…","ts":N}, no escapes), which is what a Go programmer
// who cares about speed writes for a known input; any other line goes
// through encoding/json (its user must be a string, its ts a number).
//
// Sessions follow weir's session_window semantics (processors/window.go),
// streaming, not by sorting the whole input: the watermark is the largest
// ts seen minus -ooo (max_out_of_orderness); an event at t joins every open
// session [first, last] of its user with first−gap ≤ t ≤ last+gap (merging
// those it bridges) or starts one; a session is written once the watermark
// reaches last+gap+1, and at the end of the input every open session is
// written. An event that touches no open session and whose own session
// would already be closed is late: it is dropped and counted on stderr.
// Before each event its user's closed sessions are written (so the result
// does not depend on when the others are swept); the other users' closed
// sessions are swept every time the watermark has advanced by -gap. A
// user's entry stays in the map when it has no open session (the benchmark
// has a bounded set of users), so a returning user costs no allocation.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
)

func main() {
	gap := flag.Int64("gap", 30000, "largest gap between two events of a session (ms)")
	ooo := flag.Int64("ooo", 60000, "max out-of-orderness: the watermark trails the largest ts by this (ms)")
	flag.Parse()
	if flag.NArg() != 2 || *gap < 1 || *ooo < 0 {
		fmt.Fprintln(os.Stderr, "usage: sessionbase [-gap MS] [-ooo MS] IN OUT")
		os.Exit(2)
	}
	in, err := os.Open(flag.Arg(0))
	check(err)
	out, err := os.Create(flag.Arg(1))
	check(err)
	w := bufio.NewWriterSize(out, 1<<20)
	var line []byte // reused for every output line
	s := newSessionizer(*gap, *ooo, func(user []byte, ss *session) {
		line = appendSession(line[:0], user, ss)
		w.Write(line)
	})
	check(run(bufio.NewReaderSize(in, 1<<20), s))
	check(in.Close())
	check(w.Flush())
	check(out.Close())
	if s.late > 0 {
		fmt.Fprintf(os.Stderr, "sessionbase: %d late events dropped\n", s.late)
	}
}

// run feeds every line of r to s and flushes it at the end.
func run(r *bufio.Reader, s *sessionizer) error {
	lineNo := 0
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && err != io.EOF {
			return err
		}
		lineNo++
		if l := bytes.TrimSpace(line); len(l) > 0 {
			user, ts, perr := parseEvent(l)
			if perr != nil {
				return fmt.Errorf("line %d: %w", lineNo, perr)
			}
			s.add(user, ts)
		}
		if err == io.EOF {
			break
		}
	}
	s.flush()
	return nil
}

// parseEvent returns the user and ts of one NDJSON line. The fast path
// takes {"user":"U","ts":N} exactly; anything else goes through
// encoding/json. user may alias l.
func parseEvent(l []byte) (user []byte, ts int64, err error) {
	const pre, mid = `{"user":"`, `","ts":`
	if bytes.HasPrefix(l, []byte(pre)) && l[len(l)-1] == '}' {
		rest := l[len(pre) : len(l)-1]
		if i := bytes.Index(rest, []byte(mid)); i >= 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			if n, ok := parseInt(rest[i+len(mid):]); ok {
				return rest[:i], n, nil
			}
		}
	}
	var ev struct {
		User *string     `json:"user"`
		TS   json.Number `json:"ts"`
	}
	if err := json.Unmarshal(l, &ev); err != nil {
		return nil, 0, err
	}
	if ev.User == nil || ev.TS == "" {
		return nil, 0, fmt.Errorf("want {\"user\":STRING,\"ts\":NUMBER}, got %.80s", l)
	}
	if n, err := ev.TS.Int64(); err == nil {
		return []byte(*ev.User), n, nil
	}
	f, err := ev.TS.Float64()
	if err != nil || math.IsInf(f, 0) || math.Abs(f) > 1<<62 {
		return nil, 0, fmt.Errorf("ts %s is not epoch milliseconds", ev.TS)
	}
	return []byte(*ev.User), int64(math.Floor(f)), nil
}

// parseInt parses a decimal integer (optionally negative) without
// allocating.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// session is one open session: the timestamps of its first and last
// event and its number of events.
type session struct {
	start, end, count int64
}

// user holds a user's open sessions, disjoint and sorted by start.
type user struct {
	name     []byte
	sessions []session
}

// sessionizer assigns events to sessions and emits closed ones.
type sessionizer struct {
	gap, ooo  int64
	emit      func(user []byte, s *session)
	users     map[string]*user
	wm        int64 // watermark: largest ts − ooo
	nextSweep int64 // sweep every user when wm reaches this
	late      int64
}

func newSessionizer(gap, ooo int64, emit func(user []byte, s *session)) *sessionizer {
	return &sessionizer{gap: gap, ooo: ooo, emit: emit, users: make(map[string]*user),
		wm: math.MinInt64, nextSweep: math.MinInt64}
}

// closeAt is the watermark at which s is written.
func (z *sessionizer) closeAt(s *session) int64 { return s.end + z.gap + 1 }

// add applies one event.
func (z *sessionizer) add(name []byte, t int64) {
	z.wm = max(z.wm, t-z.ooo)
	u := z.users[string(name)]
	if u == nil {
		u = &user{name: append([]byte(nil), name...)}
		z.users[string(u.name)] = u
	}
	z.closeUser(u)
	ss := u.sessions
	// Sessions touching t are ss[lo:hi].
	lo := 0
	for lo < len(ss) && ss[lo].end+z.gap < t {
		lo++
	}
	hi := lo
	for hi < len(ss) && ss[hi].start-z.gap <= t {
		hi++
	}
	switch {
	case lo < hi:
		m := session{start: min(ss[lo].start, t), end: max(ss[hi-1].end, t), count: 1}
		for _, s := range ss[lo:hi] {
			m.count += s.count
		}
		ss[lo] = m
		u.sessions = append(ss[:lo+1], ss[hi:]...)
	case t+z.gap+1 <= z.wm:
		z.late++
	default:
		ss = append(ss, session{})
		copy(ss[lo+1:], ss[lo:])
		ss[lo] = session{start: t, end: t, count: 1}
		u.sessions = ss
	}
	if z.wm >= z.nextSweep {
		z.sweep()
	}
}

// closeUser emits u's sessions that the watermark has closed.
func (z *sessionizer) closeUser(u *user) {
	k := 0
	for k < len(u.sessions) && z.closeAt(&u.sessions[k]) <= z.wm {
		z.emit(u.name, &u.sessions[k])
		k++
	}
	if k > 0 {
		u.sessions = append(u.sessions[:0], u.sessions[k:]...)
	}
}

// sweep emits every user's closed sessions.
func (z *sessionizer) sweep() {
	for _, u := range z.users {
		z.closeUser(u)
	}
	z.nextSweep = z.wm + z.gap
}

// flush emits every open session (end of input).
func (z *sessionizer) flush() {
	for _, u := range z.users {
		for i := range u.sessions {
			z.emit(u.name, &u.sessions[i])
		}
		u.sessions = u.sessions[:0]
	}
}

// appendSession appends the output line of s.
func appendSession(b, user []byte, s *session) []byte {
	b = append(b, `{"user":`...)
	b = appendJSONString(b, user)
	b = append(b, `,"start":`...)
	b = strconv.AppendInt(b, s.start, 10)
	b = append(b, `,"end":`...)
	b = strconv.AppendInt(b, s.end, 10)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, s.count, 10)
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string; only strings that need
// escaping go through encoding/json.
func appendJSONString(b, s []byte) []byte {
	for _, c := range s {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(string(s))
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessionbase:", err)
		os.Exit(1)
	}
}
