package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The examples/word_count.yaml contract (issue 3): it reads INPUT_FILE,
// writes NDJSON {"word":W,"count":N} to OUTPUT_FILE, the last line of every
// word carries its total, and it exits 0 at the end of the input.

const wordCountConfig = "../examples/word_count.yaml"

// zipfText returns a seeded random text of lines of words (skewed, with
// some non-ASCII words and varied whitespace) and each word's count.
func zipfText(seed uint64, lines int) (string, map[string]int) {
	r := rand.New(rand.NewPCG(seed, 99))
	z := rand.NewZipf(r, 1.1, 2, 5000)
	extra := []string{"weir", "straße", "día", "river", "ünïcode"}
	counts := map[string]int{}
	var sb strings.Builder
	for i := 0; i < lines; i++ {
		n := r.IntN(15)
		if r.IntN(4) == 0 {
			sb.WriteString("  ")
		}
		for j := 0; j < n; j++ {
			var w string
			if r.IntN(20) == 0 {
				w = extra[r.IntN(len(extra))]
			} else {
				w = fmt.Sprintf("w%d", z.Uint64())
			}
			counts[w]++
			sb.WriteString(w)
			sb.WriteString([]string{" ", " ", "\t", "   "}[r.IntN(4)])
		}
		sb.WriteByte('\n')
	}
	return sb.String(), counts
}

type wcLine struct {
	Word  *string `json:"word"`
	Count *int    `json:"count"`
}

// checkWordCounts checks NDJSON output against want: every line is
// {"word","count"} and nothing else; with perRow (emit on_update) each
// word's counts go 1, 2, ..., n in order, otherwise they increase; the last
// count of every word is its total. It returns the final counts.
func checkWordCounts(t *testing.T, out []byte, want map[string]int, perRow bool) map[string]int {
	t.Helper()
	last := map[string]int{}
	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines++
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var l wcLine
		if err := dec.Decode(&l); err != nil || l.Word == nil || l.Count == nil {
			t.Fatalf("line %d %q: want {\"word\":W,\"count\":N} (%v)", lines, sc.Text(), err)
		}
		w, c := *l.Word, *l.Count
		prev := last[w]
		if perRow && c != prev+1 {
			t.Fatalf("line %d: %q count %d after %d: counts must go 1, 2, ... in order", lines, w, c, prev)
		}
		if !perRow && c <= prev {
			t.Fatalf("line %d: %q count %d after %d", lines, w, c, prev)
		}
		last[w] = c
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if perRow {
		total := 0
		for _, n := range want {
			total += n
		}
		if lines != total {
			t.Errorf("%d lines for %d words", lines, total)
		}
	}
	if !maps.Equal(last, want) {
		for w, n := range want {
			if last[w] != n {
				t.Errorf("%q: last count %d, want %d", w, last[w], n)
			}
		}
		for w := range last {
			if _, ok := want[w]; !ok {
				t.Errorf("%q counted but not in the input", w)
			}
		}
		t.FailNow()
	}
	return last
}

func TestWordCountExample(t *testing.T) {
	dir := t.TempDir()
	text, want := zipfText(2024, 20000)
	input := writeFile(t, dir, "words.txt", text)
	var finals []map[string]int
	for _, c := range []struct {
		threads, emit string
	}{
		{"1", "on_update"},
		{"4", "on_update"},
		{"4", "on_checkpoint"},
	} {
		name := "threads=" + c.threads + "/" + c.emit
		t.Run(name, func(t *testing.T) {
			output := filepath.Join(dir, strings.ReplaceAll(name, "/", "-")+".ndjson")
			env := []string{
				"INPUT_FILE=" + input,
				"OUTPUT_FILE=" + output,
				"STATE_DIR=" + filepath.Join(dir, "state-"+strings.ReplaceAll(name, "/", "-")),
				"THREADS=" + c.threads,
				"EMIT=" + c.emit,
				"CHECKPOINT_INTERVAL_MS=50",
			}
			code, _, stderr := run(t, nil, env, "run", wordCountConfig)
			if code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr)
			}
			out, err := os.ReadFile(output)
			if err != nil {
				t.Fatal(err)
			}
			finals = append(finals, checkWordCounts(t, out, want, c.emit == "on_update"))
		})
	}
	for i := 1; i < len(finals); i++ {
		if !maps.Equal(finals[0], finals[i]) {
			t.Fatal("final counts differ between runs")
		}
	}
}

// TestWordCountExampleDefaults runs the README's first command from the
// repository root: no environment, the sample text, NDJSON on stdout.
func TestWordCountExampleDefaults(t *testing.T) {
	data, err := os.ReadFile("../examples/data/words.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, w := range strings.Fields(string(data)) {
		want[w]++
	}
	cmd := exec.Command(weirBin, "run", "examples/word_count.yaml")
	cmd.Dir = ".."
	// Every default, except that checkpoints go to a temp dir rather than
	// into the repository.
	cmd.Env = os.Environ()
	for _, v := range []string{"INPUT_FILE", "OUTPUT_FILE", "THREADS", "EMIT", "CHECKPOINT_INTERVAL_MS", "STATE_DIR"} {
		cmd.Env = withoutEnv(cmd.Env, v)
	}
	cmd.Env = append(cmd.Env, "STATE_DIR="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("weir did not exit; stderr:\n%s", stderr.String())
	}
	if err != nil {
		t.Fatalf("weir run examples/word_count.yaml: %v; stderr:\n%s", err, stderr.String())
	}
	checkWordCounts(t, stdout.Bytes(), want, true)
}

// withoutEnv removes every NAME= entry of env.
func withoutEnv(env []string, name string) []string {
	out := env[:0]
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}
