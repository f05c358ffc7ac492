package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The examples/session_window.yaml contract (issue 3): it reads NDJSON
// events {"user":U,"ts":EPOCH_MS} from INPUT_FILE, and writes one line
// {"user":U,"start":MS,"end":MS,"count":N} per session (a gap longer than
// SESSION_GAP_MS ms starts a new one; start and end are the first and last
// event's ts) to OUTPUT_FILE, flushing every session at the end of the
// input, and exits 0.

const sessionWindowConfig = "../examples/session_window.yaml"

type sessionEvent struct {
	user string
	ts   int64
}

// sessionEvents returns seeded events of users: bursts whose inner gaps
// are at most gap (sometimes exactly gap) separated by pauses longer than
// gap (sometimes gap+1), in an arrival order where no event comes more
// than maxDelay ms after a later-stamped one.
func sessionEvents(seed uint64, users int, gap, maxDelay int64) []sessionEvent {
	r := rand.New(rand.NewPCG(seed, 17))
	type arrival struct {
		sessionEvent
		at int64
	}
	var evs []arrival
	for u := 0; u < users; u++ {
		user := fmt.Sprintf("user-%02d", u)
		t := int64(1_700_000_000_000) + r.Int64N(10*gap)
		for s := 1 + r.IntN(6); s > 0; s-- {
			for e := 1 + r.IntN(15); e > 0; e-- {
				evs = append(evs, arrival{sessionEvent{user, t}, 0})
				switch r.IntN(8) {
				case 0:
					t += gap
				case 1:
					t += 0 // same timestamp
				default:
					t += r.Int64N(gap)
				}
			}
			if r.IntN(4) == 0 {
				t += 1
			} else {
				t += 1 + r.Int64N(3*gap)
			}
		}
	}
	for i := range evs {
		evs[i].at = evs[i].ts + r.Int64N(maxDelay+1)
	}
	slices.SortStableFunc(evs, func(a, b arrival) int { return int(a.at - b.at) })
	out := make([]sessionEvent, len(evs))
	for i, e := range evs {
		out[i] = e.sessionEvent
	}
	return out
}

// expectedSessions computes the output lines for events, sorted.
func expectedSessions(events []sessionEvent, gap int64) []string {
	byUser := map[string][]int64{}
	for _, e := range events {
		byUser[e.user] = append(byUser[e.user], e.ts)
	}
	var lines []string
	for user, ts := range byUser {
		slices.Sort(ts)
		start, n := 0, len(ts)
		for i := 1; i <= n; i++ {
			if i == n || ts[i]-ts[i-1] > gap {
				lines = append(lines, fmt.Sprintf(`{"user":%q,"start":%d,"end":%d,"count":%d}`, user, ts[start], ts[i-1], i-start))
				start = i
			}
		}
	}
	slices.Sort(lines)
	return lines
}

func TestSessionWindowExample(t *testing.T) {
	dir := t.TempDir()
	events := sessionEvents(7, 50, 30_000, 60_000)
	var sb strings.Builder
	for _, e := range events {
		fmt.Fprintf(&sb, "{\"user\":%q,\"ts\":%d}\n", e.user, e.ts)
	}
	input, err := filepath.Abs(writeFile(t, dir, "events.ndjson", sb.String()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		gap  int64
		env  []string
	}{
		{"defaults", 30_000, nil},
		{"gap=5s/threads=4", 5_000, []string{"SESSION_GAP_MS=5000", "THREADS=4", "CHECKPOINT_INTERVAL_MS=20"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			output := filepath.Join(dir, strings.ReplaceAll(c.name, "/", "-")+".ndjson")
			env := append([]string{
				"INPUT_FILE=" + input,
				"OUTPUT_FILE=" + output,
				"STATE_DIR=" + filepath.Join(t.TempDir(), "state"),
			}, c.env...)
			code, _, stderr := run(t, nil, env, "run", sessionWindowConfig)
			if code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr)
			}
			data, err := os.ReadFile(output)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			slices.Sort(got)
			want := expectedSessions(events, c.gap)
			t.Logf("%d events, %d sessions", len(events), len(want))
			if !slices.Equal(got, want) {
				missing, extra := sessionDiff(want, got)
				t.Fatalf("%d sessions, want %d\nmissing (%d): %s\nunexpected (%d): %s\nstderr:\n%s",
					len(got), len(want), len(missing), firstLines(missing), len(extra), firstLines(extra), stderr)
			}
		})
	}
}

// sessionDiff returns the lines of a not in b and of b not in a (both sorted).
func sessionDiff(a, b []string) (onlyA, onlyB []string) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			onlyA = append(onlyA, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			onlyB = append(onlyB, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return onlyA, onlyB
}

func firstLines(lines []string) string {
	if len(lines) > 5 {
		lines = lines[:5]
	}
	return strings.Join(lines, "\n")
}
