package processors

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/weir-stream/weir/connectors/file"

	"github.com/weir-stream/weir/config"
	"github.com/weir-stream/weir/engine"
)

// Engine-level tests: the stateful processors in real streams (file input,
// split, keyed exchange over thread_num workers, file output).

// randomText returns lines of words drawn from a skewed vocabulary, and
// each word's count.
func randomText(seed uint64, lines int) (string, map[string]int) {
	r := rand.New(rand.NewPCG(seed, 7))
	z := rand.NewZipf(r, 1.2, 1, 300)
	counts := map[string]int{}
	var sb strings.Builder
	for i := 0; i < lines; i++ {
		n := r.IntN(12)
		for j := 0; j < n; j++ {
			w := fmt.Sprintf("w%d", z.Uint64())
			counts[w]++
			sb.WriteString(w)
			sb.WriteString([]string{" ", "  ", "\t"}[r.IntN(3)])
		}
		sb.WriteByte('\n')
	}
	return sb.String(), counts
}

// runPipeline runs the one-stream config body (everything under the
// stream's list item) with IN and OUT replaced by temp files holding input
// and the output, and returns the output lines. With checkpoints, every
// completed barrier triggers the next one.
func runPipeline(t *testing.T, body, input string, checkpoints bool) []string {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.txt"), filepath.Join(dir, "out.ndjson")
	if err := os.WriteFile(in, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	body = strings.NewReplacer("IN", in, "OUT", out).Replace(body)
	root, err := config.Parse("test.yaml", []byte("streams:\n  - "+strings.ReplaceAll(strings.TrimSpace(body), "\n", "\n    ")+"\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	var opts engine.Options
	barriers := 0
	if checkpoints {
		opts.OnBarrier = func(_ context.Context, s *engine.Stream, b *engine.Barrier) {
			b.Release()
			barriers++
			s.TriggerCheckpoint(b.ID + 1)
		}
	}
	s, err := engine.NewStream(root.Streams[0], opts)
	if err != nil {
		t.Fatal(err)
	}
	if checkpoints {
		s.TriggerCheckpoint(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("run: %v", err)
	}
	if checkpoints && barriers == 0 {
		t.Fatal("no checkpoint barrier passed the stream")
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

type wordCount struct {
	Word  string `json:"word"`
	Count int    `json:"count"`
}

func parseCounts(t *testing.T, lines []string) []wordCount {
	t.Helper()
	out := make([]wordCount, 0, len(lines))
	for _, l := range lines {
		if l == "" {
			continue
		}
		var wc wordCount
		if err := json.Unmarshal([]byte(l), &wc); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out = append(out, wc)
	}
	return out
}

const wordCountStream = `
input: {type: file, path: IN, format: lines, batch_size: 16}
pipeline:
  thread_num: THREADS
  processors:
    - type: split
      output_field: word
    - type: aggregate
      group_by: word
      key_column: word
      aggregates: [{function: count, as: count}]
      emit: EMIT
output: {type: file, path: OUT}
`

func TestAggregateInStream(t *testing.T) {
	text, want := randomText(42, 1500)
	total := 0
	for _, n := range want {
		total += n
	}
	for _, emit := range []string{emitOnUpdate, emitOnCheckpoint, emitOnEnd} {
		var finals []map[string]int
		for _, threads := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/threads=%d", emit, threads), func(t *testing.T) {
				body := strings.NewReplacer("THREADS", fmt.Sprint(threads), "EMIT", emit).Replace(wordCountStream)
				rows := parseCounts(t, runPipeline(t, body, text, emit == emitOnCheckpoint))
				last := map[string]int{}
				for _, r := range rows {
					prev := last[r.Word]
					switch emit {
					case emitOnUpdate: // per word: 1, 2, ..., n in order
						if r.Count != prev+1 {
							t.Fatalf("%q: count %d after %d", r.Word, r.Count, prev)
						}
					case emitOnCheckpoint: // per word: increasing
						if r.Count <= prev {
							t.Fatalf("%q: count %d after %d", r.Word, r.Count, prev)
						}
					case emitOnEnd: // once per word
						if prev != 0 {
							t.Fatalf("%q emitted twice", r.Word)
						}
					}
					last[r.Word] = r.Count
				}
				if emit == emitOnCheckpoint {
					t.Logf("%d rows for %d words: %d emitted at barriers before the end", len(rows), len(want), len(rows)-len(want))
				}
				if emit == emitOnUpdate && len(rows) != total {
					t.Fatalf("%d rows for %d words", len(rows), total)
				}
				if !maps.Equal(last, want) {
					t.Fatalf("final counts differ from a map count: %d words, want %d", len(last), len(want))
				}
				finals = append(finals, last)
			})
		}
		if len(finals) == 2 && !maps.Equal(finals[0], finals[1]) {
			t.Fatalf("%s: thread_num 1 and 4 counted differently", emit)
		}
	}
}

func TestAggregateInStreamErrorOutput(t *testing.T) {
	// Rows whose key cannot be computed reach error_output; the rest count.
	body := `
input: {type: file, path: IN, format: lines, batch_size: 3}
pipeline:
  thread_num: 4
  processors:
    - type: aggregate
      group_by: 'int(content) % 2 == 0 ? "even" : nil'
      key_column: parity
output: {type: file, path: OUT}
error_output: {type: file, path: OUT.errors}
`
	var in strings.Builder
	for i := 0; i < 40; i++ {
		fmt.Fprintln(&in, i)
	}
	lines := runPipeline(t, body, in.String(), false)
	if len(lines) != 20 || lines[19] != `{"parity":"even","count":20}` {
		t.Fatalf("output %v", lines)
	}
}

func TestDedupeInStream(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var in strings.Builder
	seen := map[string]bool{}
	var firsts []string
	for i := 0; i < 3000; i++ {
		v := fmt.Sprintf("id-%d", r.IntN(500))
		fmt.Fprintln(&in, v)
		if !seen[v] {
			seen[v] = true
			firsts = append(firsts, v)
		}
	}
	slices.Sort(firsts)
	for _, threads := range []int{1, 4} {
		body := fmt.Sprintf(`
input: {type: file, path: IN, format: lines, batch_size: 10}
pipeline:
  thread_num: %d
  processors:
    - type: dedupe
      key: __value__
      ttl: 1h
output: {type: file, path: OUT}
`, threads)
		lines := runPipeline(t, body, in.String(), true)
		slices.Sort(lines)
		if !slices.Equal(lines, firsts) {
			t.Fatalf("threads %d: %d rows passed, want the %d distinct ids once each", threads, len(lines), len(firsts))
		}
	}
}

// wordCountBenchText is a shared ~8 MB text of Zipf-distributed words.
var wordCountBenchText = sync.OnceValue(func() []byte {
	r := rand.New(rand.NewPCG(11, 12))
	z := rand.NewZipf(r, 1.1, 1, 100000)
	var sb bytes.Buffer
	for sb.Len() < 8<<20 {
		n := 5 + r.IntN(10)
		for j := 0; j < n; j++ {
			if j > 0 {
				sb.WriteByte(' ')
			}
			fmt.Fprintf(&sb, "w%d", z.Uint64())
		}
		sb.WriteByte('\n')
	}
	return sb.Bytes()
})

// BenchmarkWordCountStream runs examples/word_count.yaml (file input,
// split, aggregate count, NDJSON file output) over an 8 MB Zipf text;
// compare its MB/s with BenchmarkWordCountHandWritten.
func BenchmarkWordCountStream(b *testing.B) {
	text := wordCountBenchText()
	dir := b.TempDir()
	in := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(in, text, 0o644); err != nil {
		b.Fatal(err)
	}
	yaml, err := os.ReadFile("../examples/word_count.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for _, threads := range []string{"1", "2"} {
		for _, emit := range []string{emitOnUpdate, emitOnEnd} {
			b.Run("threads="+threads+"/"+emit, func(b *testing.B) {
				env := map[string]string{"INPUT_FILE": in, "OUTPUT_FILE": filepath.Join(dir, "out.ndjson"), "THREADS": threads, "EMIT": emit}
				root, err := config.Parse("word_count.yaml", yaml, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(text)))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					s, err := engine.NewStream(root.Streams[0], engine.Options{})
					if err != nil {
						b.Fatal(err)
					}
					if err := s.Run(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkWordCountHandWritten is the reference: a single-threaded
// bufio + map word count of the same text, writing each word's total.
func BenchmarkWordCountHandWritten(b *testing.B) {
	text := wordCountBenchText()
	b.SetBytes(int64(len(text)))
	for i := 0; i < b.N; i++ {
		sc := bufio.NewScanner(bytes.NewReader(text))
		counts := map[string]int{}
		for sc.Scan() {
			for _, w := range bytes.Fields(sc.Bytes()) {
				counts[string(w)]++
			}
		}
		w := bufio.NewWriter(io.Discard)
		for k, n := range counts {
			fmt.Fprintf(w, "{\"word\":%q,\"count\":%d}\n", k, n)
		}
		_ = w.Flush()
	}
}
