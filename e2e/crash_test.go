package e2e

import (
	"bufio"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-stream/weir/checkpoint/storage/storagetest"
)

// TestWordCountSurvivesSIGKILL kills the real binary with SIGKILL at random
// moments (between and during checkpoints), restarts it, and checks every
// word's counts against the input: with the at-least-once file output
// every count 1..n appears (nothing lost), none is above n, and the last
// line of each word carries its total (the state is exactly right).
func TestWordCountSurvivesSIGKILL(t *testing.T) {
	crashWordCount(t, []string{"STATE_DIR=" + filepath.Join(t.TempDir(), "state")})
}

// TestWordCountExactlyOnceFileSurvivesSIGKILL is the same with the
// exactly-once file output: every count of every word appears exactly once.
func TestWordCountExactlyOnceFileSurvivesSIGKILL(t *testing.T) {
	crashWordCount(t, []string{"STATE_DIR=" + filepath.Join(t.TempDir(), "state"), "EXACTLY_ONCE=true"})
}

// TestWordCountSurvivesSIGKILLWithS3 is the same with Hybrid state: memory
// state, checkpoints in a real S3 server (MinIO, started by make test).
func TestWordCountSurvivesSIGKILLWithS3(t *testing.T) {
	s3 := storagetest.S3FromEnv(t)
	store := s3.NewS3(t) // creates the bucket; cleans the prefix up
	_ = store
	prefix := storagetest.UniquePrefix(t)
	crashWordCount(t, []string{
		"STATE_BACKEND=Hybrid", "STATE_DIR=" + filepath.Join(t.TempDir(), "state"),
		"S3_BUCKET=" + s3.Bucket, "S3_PREFIX=" + prefix, "S3_ENDPOINT=" + s3.Endpoint, "S3_USE_SSL=false",
		"AWS_REGION=" + s3.Region, "AWS_ACCESS_KEY_ID=" + s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3.SecretKey,
	})
}

func crashWordCount(t *testing.T, stateEnv []string) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WEIR_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (set WEIR_CRASH_SEED to replay)", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	dir := t.TempDir()
	in := filepath.Join(dir, "words.txt")
	want := map[string]int{}
	var sb strings.Builder
	for line := 0; line < 1000000; line++ {
		n := 1 + rng.IntN(10)
		for i := 0; i < n; i++ {
			w := "w" + strconv.Itoa(int(rng.ExpFloat64()*300))
			want[w]++
			if i > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(w)
		}
		sb.WriteByte('\n')
	}
	if err := os.WriteFile(in, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "counts.ndjson")
	env := append([]string{"INPUT_FILE=" + in, "OUTPUT_FILE=" + out, "CHECKPOINT_INTERVAL_MS=50", "THREADS=2"}, stateEnv...)

	kills := 0
	for attempt := 0; ; attempt++ {
		if attempt > 200 {
			t.Fatalf("no clean finish after %d runs", attempt)
		}
		p := start(t, nil, env, "run", "--progress", "never", "../examples/word_count.yaml")
		if kills < 12 {
			delay := time.Duration(10+rng.IntN(70)) * time.Millisecond
			select {
			case <-p.done:
				if code := p.cmd.ProcessState.ExitCode(); code != 0 {
					t.Fatalf("run %d exited %d:\n%s", attempt, code, p.stderr.String())
				}
				// Finished before the kill: start over with a fresh state
				// would hide nothing, but we want kills; the input is small,
				// so count what we got and stop.
				t.Logf("run %d finished before its kill after %d kills", attempt, kills)
				goto verify
			case <-time.After(delay):
				p.signal(syscall.SIGKILL)
				<-p.done
				kills++
				continue
			}
		}
		if code := p.wait(t, 2*time.Minute); code != 0 {
			t.Fatalf("final run exited %d:\n%s", code, p.stderr.String())
		}
		break
	}
verify:
	if kills < 10 {
		t.Fatalf("only %d kills happened; the input is too small for this machine", kills)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	exactlyOnce := false
	for _, e := range stateEnv {
		exactlyOnce = exactlyOnce || e == "EXACTLY_ONCE=true"
	}
	seen := map[string]map[int]bool{}
	last := map[string]int{}
	lines := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Word  string `json:"word"`
			Count int    `json:"count"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("bad output line %q: %v", sc.Text(), err)
		}
		lines++
		if seen[rec.Word] == nil {
			seen[rec.Word] = map[int]bool{}
		}
		if exactlyOnce && seen[rec.Word][rec.Count] {
			t.Errorf("word %s: count %d committed twice", rec.Word, rec.Count)
		}
		seen[rec.Word][rec.Count] = true
		last[rec.Word] = rec.Count
	}
	for w, n := range want {
		if last[w] != n {
			t.Errorf("word %s: last count %d, want %d", w, last[w], n)
		}
		for c := 1; c <= n; c++ {
			if !seen[w][c] {
				t.Errorf("word %s: count %d never emitted (lost)", w, c)
				break
			}
		}
		if len(seen[w]) != n {
			t.Errorf("word %s: %d distinct counts, want %d", w, len(seen[w]), n)
		}
	}
	if exactlyOnce {
		total := 0
		for _, n := range want {
			total += n
		}
		if lines != total {
			t.Errorf("%d lines committed, want exactly %d (one per word occurrence)", lines, total)
		}
	}
	if len(last) != len(want) {
		t.Errorf("%d words in output, %d in input", len(last), len(want))
	}
	t.Logf("%d kills, %d words verified", kills, len(want))
}
