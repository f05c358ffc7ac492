package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	sessionEvents = 5_000_000
	sessionUsers  = 10_000
	sessionSeed   = 42
	// sessionGapMS and sessionOOOMS are the example's defaults, set
	// explicitly for weir and the baseline alike.
	sessionGapMS = 30_000
	sessionOOOMS = 60_000
	// sessionWindowYAML is the example the benchmark runs, unchanged.
	sessionWindowYAML = "examples/session_window.yaml"
)

// sessionYAMLVars are the environment variables of session_window.yaml
// the benchmark sets.
var sessionYAMLVars = []string{"INPUT_FILE", "OUTPUT_FILE", "STATE_DIR", "CHECKPOINT_INTERVAL_MS", "THREADS",
	"SESSION_GAP_MS", "MAX_OUT_OF_ORDERNESS_MS"}

// sessions runs examples/session_window.yaml on 5 M generated events at
// thread_num 1 and 2 against the hand-written sessionizer
// (bench/cmd/sessionbase), and checks that every run writes the same set of
// sessions as the baseline, and the baseline the sessions of sorting each
// user's events.
func (r *runner) sessions() {
	conf, err := os.ReadFile(sessionWindowYAML)
	must(err)
	for _, v := range sessionYAMLVars {
		if !bytes.Contains(conf, []byte("${"+v)) {
			fail("%s: no ${%s}: the session benchmark sets it", sessionWindowYAML, v)
		}
	}
	events := filepath.Join(*dataDir, fmt.Sprintf("sessions-%dM-u%d-s%d.ndjson", sessionEvents/1_000_000, sessionUsers, sessionSeed))
	if _, err := os.Stat(events); err != nil {
		run(r.bin("gen"), "-kind", "sessions", "-events", fmt.Sprint(sessionEvents), "-users", fmt.Sprint(sessionUsers),
			"-seed", fmt.Sprint(sessionSeed), "-out", events)
	}
	st, err := os.Stat(events)
	must(err)

	// The reference: the baseline's first output, checked against the
	// sessions of sorting each user's events.
	ref := filepath.Join(r.tmp, "sessions-ref.ndjson")
	out := filepath.Join(r.tmp, "sessions-out.ndjson")
	baseline := func(path string) sample {
		os.Remove(path)
		return timed(nil, r.bin("sessionbase"), "-gap", fmt.Sprint(sessionGapMS), "-ooo", fmt.Sprint(sessionOOOMS), events, path)
	}
	first := baseline(ref)
	want, err := readSessionSum(ref)
	must(err)
	ideal, err := sortedSplitSessions(events, sessionGapMS)
	must(err)
	if ideal != want {
		idealList, err := sortedSplitList(events, sessionGapMS)
		must(err)
		got, err := readSessions(ref)
		must(err)
		failSessionDiff("baseline (bench/cmd/sessionbase) against sorted and split events", idealList, got)
	}
	fmt.Fprintf(os.Stderr, "runbench: sessions: %d events, %d sessions\n", sessionEvents, want.n)

	m := func(name string) *measure { return &measure{name: name, bytes: st.Size(), records: sessionEvents} }
	base := m("Go sessionizer: bufio + hand parser + map of open sessions (baseline, ceiling)")
	type weirRun struct {
		m       *measure
		threads int
		ckpts   []float64
	}
	weirRuns := []*weirRun{
		{m: m("weir session_window.yaml, thread_num 1"), threads: 1},
		{m: m("weir session_window.yaml, thread_num 2"), threads: 2},
	}
	base.add(first)
	for i := 0; i < *runs; i++ {
		if i > 0 {
			base.add(baseline(out))
			checkSessions(out, ref, want, "baseline (bench/cmd/sessionbase)")
		}
		for _, w := range weirRuns {
			os.Remove(out)
			stateDir, err := os.MkdirTemp(r.tmp, "state-")
			must(err)
			env := []string{"INPUT_FILE=" + events, "OUTPUT_FILE=" + out, "STATE_DIR=" + stateDir, "CHECKPOINT_INTERVAL_MS=1000",
				"THREADS=" + strconv.Itoa(w.threads), "SESSION_GAP_MS=" + fmt.Sprint(sessionGapMS),
				"MAX_OUT_OF_ORDERNESS_MS=" + fmt.Sprint(sessionOOOMS)}
			s := timed(env, r.weir, "run", "--progress", "never", sessionWindowYAML)
			w.m.add(s)
			w.ckpts = append(w.ckpts, float64(strings.Count(s.stderr, `msg="checkpoint completed"`)))
			checkSessions(out, ref, want, w.m.name)
			os.RemoveAll(stateDir)
		}
	}
	os.Remove(out)
	os.Remove(ref)

	w := &r.report
	fmt.Fprintf(w, "## Session windows (%s events, %s users, seed %d)\n\n", thousands(sessionEvents), thousands(sessionUsers), sessionSeed)
	fmt.Fprintf(w, "%.1f MB of NDJSON events `{\"user\":U,\"ts\":MS}` (`gen -kind sessions`: time rising by 0–19 ms per event, "+
		"up to 1 s of disorder), %s sessions. weir runs `%s` unchanged with `INPUT_FILE`, `OUTPUT_FILE`, `STATE_DIR` "+
		"(a fresh temp dir per run), `CHECKPOINT_INTERVAL_MS=1000`, `SESSION_GAP_MS=%d`, `MAX_OUT_OF_ORDERNESS_MS=%d` and "+
		"`THREADS`: memory state, checkpoints to the local dir every second. The baseline, `bench/cmd/sessionbase`, is one "+
		"goroutine applying the same rules (watermark = largest ts − out-of-orderness; a session closes when the watermark "+
		"passes its last event + gap) with bufio, a hand parser for the generator's lines and a Go map of each user's open "+
		"sessions, no checkpoints, and writes the same lines `{\"user\":U,\"start\":MS,\"end\":MS,\"count\":N}`. Every run's sessions, "+
		"as a set (the order of the lines differs), are checked against the baseline's, and the baseline's against sorting "+
		"each user's events and splitting them at gaps > %d ms: **identical in every run**. Times are wall clock of the "+
		"whole process (start, final checkpoint and output included).\n\n",
		float64(st.Size())/1e6, thousands(want.n), sessionWindowYAML, sessionGapMS, sessionOOOMS, sessionGapMS)
	fmt.Fprintf(w, "| program | events/s | MB/s | time s (min–max) | peak RSS MB | checkpoints per run | ratio to baseline |\n|---|---:|---:|---:|---:|---:|---:|\n")
	row := func(mm *measure, ckpts string) {
		md := mm.median()
		lo, hi := mm.rangeSecs()
		fmt.Fprintf(w, "| %s | %s | %.1f | %.2f (%.2f–%.2f) | %.0f | %s | %.2f |\n", mm.name, thousands(int64(mm.rps(md.secs))),
			mm.mbps(md.secs), md.secs, lo, hi, mm.medianRSS(), ckpts, mm.ratio(base))
	}
	row(base, "—")
	for _, wr := range weirRuns {
		row(wr.m, stat(wr.ckpts).format("%.0f"))
	}
	fmt.Fprintln(w)

	baseRate := thousands(int64(base.rps(base.median().secs)))
	for _, wr := range weirRuns {
		r.sum(fmt.Sprintf("Session windows (5 M events), thread_num %d, checkpoints 1 s, events/s", wr.threads),
			thousands(int64(wr.m.rps(wr.m.median().secs))), "Go sessionizer "+baseRate+" events/s; no target",
			fmt.Sprintf("%.2f", wr.m.ratio(base)), "—")
	}
}

// checkSessions fails the bench, showing the first differences, when the
// sessions in path are not those of the reference output ref (whose
// summary is want).
func checkSessions(path, ref string, want sessionSum, who string) {
	got, err := readSessionSum(path)
	if err != nil {
		fail("%s: %v", who, err)
	}
	if got != want {
		wantList, err := readSessions(ref)
		must(err)
		gotList, err := readSessions(path)
		must(err)
		failSessionDiff(who, wantList, gotList)
	}
}

// failSessionDiff fails the bench with the first sessions that differ.
func failSessionDiff(who string, want, got []sessionRec) {
	missing, extra := diffSessions(want, got)
	fail("%s: %d sessions, want %d; missing (%d): %s; unexpected (%d): %s", who, len(got), len(want),
		len(missing), firstSessions(missing), len(extra), firstSessions(extra))
}

// sessionRec is one output line {"user":U,"start":MS,"end":MS,"count":N}.
type sessionRec struct {
	user              string
	start, end, count int64
}

func (s sessionRec) String() string {
	return fmt.Sprintf(`{"user":%q,"start":%d,"end":%d,"count":%d}`, s.user, s.start, s.end, s.count)
}

func cmpSession(a, b sessionRec) int {
	if c := strings.Compare(a.user, b.user); c != 0 {
		return c
	}
	for _, d := range [3][2]int64{{a.start, b.start}, {a.end, b.end}, {a.count, b.count}} {
		if c := cmpInt(d[0], d[1]); c != 0 {
			return c
		}
	}
	return 0
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// sessionSum is an order-independent fingerprint of a multiset of
// sessions: their number and two sums of 64-bit hashes with independent
// seeds (sums, not XORs, so duplicates count). Two outputs with equal
// sums hold the same sessions but with a chance of about 2⁻¹²⁸; it spares
// sorting millions of lines per run. The seeds are per process, which is
// all a comparison within one run needs.
type sessionSum struct {
	n      int64
	h1, h2 uint64
}

var sessionSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// add folds one session into the sum; buf is scratch space.
func (s *sessionSum) add(buf []byte, user []byte, start, end, count int64) []byte {
	buf = append(buf[:0], user...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(start))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(end))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(count))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(user)))
	s.n++
	s.h1 += maphash.Bytes(sessionSeeds[0], buf)
	s.h2 += maphash.Bytes(sessionSeeds[1], buf)
	return buf
}

// eachSession calls fn for every line of an output file.
func eachSession(path string, fn func(user []byte, start, end, count int64)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(bufio.NewReaderSize(f, 1<<20))
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		user, v, ok := parseSessionLine(sc.Bytes())
		if !ok {
			return fmt.Errorf("%s:%d: not a {\"user\":U,\"start\":MS,\"end\":MS,\"count\":N} line: %q", path, line, sc.Text())
		}
		fn(user, v[0], v[1], v[2])
	}
	return sc.Err()
}

func readSessionSum(path string) (sessionSum, error) {
	var s sessionSum
	var buf []byte
	err := eachSession(path, func(user []byte, start, end, count int64) { buf = s.add(buf, user, start, end, count) })
	return s, err
}

// readSessions returns the sessions of an output file, sorted.
func readSessions(path string) ([]sessionRec, error) {
	var all []sessionRec
	err := eachSession(path, func(user []byte, start, end, count int64) {
		all = append(all, sessionRec{string(user), start, end, count})
	})
	slices.SortFunc(all, cmpSession)
	return all, err
}

// parseSessionLine parses one output line into its user and start, end,
// count. The fast path takes lines exactly as weir and the baseline write
// them; anything else goes through encoding/json.
func parseSessionLine(l []byte) (user []byte, v [3]int64, ok bool) {
	const pre = `{"user":"`
	if rest, found := bytes.CutPrefix(l, []byte(pre)); found && bytes.HasSuffix(rest, []byte("}")) {
		rest = rest[:len(rest)-1]
		if i := bytes.IndexByte(rest, '"'); i >= 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			user, rest = rest[:i], rest[i+1:]
			ok = true
			for k, name := range []string{`,"start":`, `,"end":`, `,"count":`} {
				var num []byte
				if rest, found = bytes.CutPrefix(rest, []byte(name)); !found {
					ok = false
					break
				}
				if j := bytes.IndexByte(rest, ','); j >= 0 {
					num, rest = rest[:j], rest[j:]
				} else {
					num, rest = rest, nil
				}
				n, err := strconv.ParseInt(string(num), 10, 64)
				if err != nil {
					ok = false
					break
				}
				v[k] = n
			}
			if ok && len(rest) == 0 {
				return user, v, true
			}
		}
	}
	var rec struct {
		User  *string `json:"user"`
		Start *int64  `json:"start"`
		End   *int64  `json:"end"`
		Count *int64  `json:"count"`
	}
	if err := json.Unmarshal(l, &rec); err != nil || rec.User == nil || rec.Start == nil || rec.End == nil || rec.Count == nil {
		return nil, v, false
	}
	return []byte(*rec.User), [3]int64{*rec.Start, *rec.End, *rec.Count}, true
}

// sortedSplit groups the events of an NDJSON input {"user":U,"ts":MS} by
// user, sorts each user's timestamps and splits them where two are more
// than gap apart: the sessions of any input whose disorder stays within
// max_out_of_orderness. fn gets every session.
func sortedSplit(path string, gap int64, fn func(user string, start, end, count int64)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	byUser := make(map[string][]int64)
	sc := bufio.NewScanner(bufio.NewReaderSize(f, 1<<20))
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	line := 0
	for sc.Scan() {
		line++
		l := bytes.TrimSpace(sc.Bytes())
		if len(l) == 0 {
			continue
		}
		user, ts, ok := parseEventLine(l)
		if !ok {
			return fmt.Errorf("%s:%d: not a {\"user\":U,\"ts\":MS} line: %q", path, line, l)
		}
		if s, found := byUser[string(user)]; found {
			byUser[string(user)] = append(s, ts)
		} else {
			byUser[string(user)] = []int64{ts}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for u, ts := range byUser {
		slices.Sort(ts)
		start := 0
		for i := 1; i <= len(ts); i++ {
			if i == len(ts) || ts[i]-ts[i-1] > gap {
				fn(u, ts[start], ts[i-1], int64(i-start))
				start = i
			}
		}
	}
	return nil
}

func sortedSplitSessions(path string, gap int64) (sessionSum, error) {
	var s sessionSum
	var buf []byte
	err := sortedSplit(path, gap, func(user string, start, end, count int64) {
		buf = s.add(buf, []byte(user), start, end, count)
	})
	return s, err
}

func sortedSplitList(path string, gap int64) ([]sessionRec, error) {
	var all []sessionRec
	err := sortedSplit(path, gap, func(user string, start, end, count int64) {
		all = append(all, sessionRec{user, start, end, count})
	})
	slices.SortFunc(all, cmpSession)
	return all, err
}

// parseEventLine parses an input event: the generator's lines exactly,
// else through encoding/json (integer ts only).
func parseEventLine(l []byte) (user []byte, ts int64, ok bool) {
	const pre, mid = `{"user":"`, `","ts":`
	if rest, found := bytes.CutPrefix(l, []byte(pre)); found && bytes.HasSuffix(rest, []byte("}")) {
		rest = rest[:len(rest)-1]
		if i := bytes.Index(rest, []byte(mid)); i >= 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			if n, err := strconv.ParseInt(string(rest[i+len(mid):]), 10, 64); err == nil {
				return rest[:i], n, true
			}
		}
	}
	var ev struct {
		User *string `json:"user"`
		TS   *int64  `json:"ts"`
	}
	if err := json.Unmarshal(l, &ev); err != nil || ev.User == nil || ev.TS == nil {
		return nil, 0, false
	}
	return []byte(*ev.User), *ev.TS, true
}

// diffSessions returns the sessions of want not in got and of got not in
// want (both sorted by cmpSession; duplicates count).
func diffSessions(want, got []sessionRec) (missing, extra []sessionRec) {
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j == len(got) || (i < len(want) && cmpSession(want[i], got[j]) < 0):
			missing = append(missing, want[i])
			i++
		case i == len(want) || cmpSession(got[j], want[i]) < 0:
			extra = append(extra, got[j])
			j++
		default:
			i++
			j++
		}
	}
	return missing, extra
}

func firstSessions(s []sessionRec) string {
	var parts []string
	for _, x := range s[:min(5, len(s))] {
		parts = append(parts, x.String())
	}
	if len(s) > 5 {
		parts = append(parts, "…")
	}
	return strings.Join(parts, " ")
}
