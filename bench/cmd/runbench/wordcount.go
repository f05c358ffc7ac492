package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

const (
	zipfVocab = 100_000
	zipfSeed  = 42
	// wordCountYAML is the example the benchmark runs, unchanged.
	wordCountYAML = "examples/word_count.yaml"
)

// wordCount runs examples/word_count.yaml on a Zipf text against the
// hand-written Go word count, and checks that every weir run's final counts
// equal the baseline's.
func (r *runner) wordCount() {
	text := filepath.Join(*dataDir, fmt.Sprintf("zipf-%dMB-v%d-s%d.txt", *sizeMB, zipfVocab, zipfSeed))
	if _, err := os.Stat(text); err != nil {
		run(r.bin("gen"), "-kind", "zipf", "-size", fmt.Sprintf("%dMB", *sizeMB), "-vocab", fmt.Sprint(zipfVocab),
			"-seed", fmt.Sprint(zipfSeed), "-out", text)
	}
	st, err := os.Stat(text)
	must(err)

	out := filepath.Join(r.tmp, "wc-out.ndjson")
	// The reference counts: the baseline's output of the first run.
	baseline := func(mode string) sample {
		os.Remove(out)
		s := timed(nil, r.bin("wordcount"), "-map", mode, text, out)
		return s
	}
	s := baseline("ptr")
	want := parseCounts(out, false)
	var words int64
	for _, n := range want {
		words += n
	}
	m := func(name string) *measure { return &measure{name: name, bytes: st.Size(), records: words} }
	basePtr := m("Go word count: bufio + `map[string]*int` (baseline, ceiling)")
	baseInt := m("Go word count: bufio + `map[string]int`, `counts[string(w)]++`")
	type weirRun struct {
		m       *measure
		config  string
		threads int
		emit    string
		ckpts   []float64
	}
	weirRuns := []*weirRun{
		{m: m("weir word_count.yaml, thread_num 1, emit on_end"), config: wordCountYAML, threads: 1, emit: "on_end"},
		{m: m("weir word_count.yaml, thread_num 2, emit on_end"), config: wordCountYAML, threads: 2, emit: "on_end"},
		// More threads than this machine's 2 cores: users ask what it does.
		{m: m("weir word_count.yaml, thread_num 4, emit on_end"), config: wordCountYAML, threads: 4, emit: "on_end"},
		{m: m("weir word_count.yaml, thread_num 1, emit on_update (reference)"), config: wordCountYAML, threads: 1, emit: "on_update"},
	}
	// The same pipeline without checkpoints shows what they cost.
	noCkpt, err := r.withoutCheckpoints()
	if err != nil {
		fmt.Fprintf(os.Stderr, "runbench: no run without checkpoints: %v\n", err)
	} else {
		weirRuns = append(weirRuns, &weirRun{m: m("weir word_count.yaml with `state.enabled: false` (no checkpoints), thread_num 1, emit on_end (reference)"),
			config: noCkpt, threads: 1, emit: "on_end"})
	}
	basePtr.add(s)
	for i := 0; i < *runs; i++ {
		if i > 0 {
			basePtr.add(baseline("ptr"))
			check(parseCounts(out, false), want, "baseline (map[string]*int)")
		}
		baseInt.add(baseline("int"))
		check(parseCounts(out, false), want, "baseline (map[string]int)")
		for _, w := range weirRuns {
			os.Remove(out)
			stateDir, err := os.MkdirTemp(r.tmp, "state-")
			must(err)
			s := timed(r.wordCountEnv(text, out, stateDir, w.threads, w.emit), r.weir, "run", "--progress", "never", w.config)
			w.m.add(s)
			w.ckpts = append(w.ckpts, float64(strings.Count(s.stderr, `msg="checkpoint completed"`)))
			check(parseCounts(out, w.emit == "on_update"), want, w.m.name)
			os.RemoveAll(stateDir)
		}
	}
	os.Remove(out)

	w := &r.report
	fmt.Fprintf(w, "## Word count (%d MB Zipf text, vocabulary %d k, seed %d)\n\n", *sizeMB, zipfVocab/1000, zipfSeed)
	fmt.Fprintf(w, "%s words in %s lines, %d distinct. weir runs `%s` unchanged with `INPUT_FILE`, `OUTPUT_FILE`, "+
		"`STATE_DIR` (a fresh temp dir per run), `CHECKPOINT_INTERVAL_MS=1000`, `THREADS` and `EMIT`: memory state, "+
		"checkpoints to the local dir every second. `emit on_end` writes each word's final count once, as the baseline does; "+
		"`on_update` writes one line per word occurrence. Every run's final counts (for on_update the last line of each word) "+
		"are checked against the baseline's: **identical in every run**. Times are wall clock of the whole process "+
		"(start, final checkpoint and output included). `thread_num` 4 runs more workers than this machine has cores (%d).\n\n",
		thousands(words), thousands(countLines(text)), len(want), wordCountYAML, runtime.NumCPU())
	fmt.Fprintf(w, "| program | MB/s | words/s | time s (min–max) | peak RSS MB | checkpoints per run | ratio to baseline | ratio to `map[string]int` |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	row := func(mm *measure, ckpts string) {
		md := mm.median()
		lo, hi := mm.rangeSecs()
		fmt.Fprintf(w, "| %s | %.1f | %s | %.2f (%.2f–%.2f) | %.0f | %s | %.2f | %.2f |\n", mm.name, mm.mbps(md.secs), thousands(int64(mm.rps(md.secs))),
			md.secs, lo, hi, mm.medianRSS(), ckpts, mm.ratio(basePtr), mm.ratio(baseInt))
	}
	row(basePtr, "—")
	row(baseInt, "—")
	for _, wr := range weirRuns {
		row(wr.m, stat(wr.ckpts).format("%.0f"))
	}
	fmt.Fprintln(w)

	// The plot: MB/s against thread_num of the on_end runs with
	// checkpoints, and the baseline.
	plotted.throughput = nil
	for _, wr := range weirRuns {
		if wr.config == wordCountYAML && wr.emit == "on_end" {
			plotted.throughput = append(plotted.throughput, throughputPoint{threads: wr.threads, mbps: mbpsFigure(wr.m)})
		}
	}
	plotted.baseline = mbpsFigure(basePtr)
	plotted.plainMap = mbpsFigure(baseInt)
	writePlot()
	embedPlot(w)

	bmb := basePtr.mbps(basePtr.median().secs)
	for _, wr := range weirRuns {
		ratio := wr.m.ratio(basePtr)
		met := yesNo(ratio >= 0.5)
		ref := fmt.Sprintf("Go map word count %.1f MB/s; target ≥ 0.5", bmb)
		ckpt := "checkpoints 1 s"
		if wr.config != wordCountYAML {
			ckpt = "no checkpoints"
		}
		if wr.emit == "on_update" || wr.config != wordCountYAML {
			met, ref = "—", fmt.Sprintf("Go map word count %.1f MB/s; reference, no target", bmb)
		}
		r.sum(fmt.Sprintf("Word count, thread_num %d, emit %s, %s, MB/s", wr.threads, wr.emit, ckpt),
			fmt.Sprintf("%.1f", wr.m.mbps(wr.m.median().secs)), ref, fmt.Sprintf("%.2f", ratio), met)
	}
	if *profile {
		r.profileWordCount(text)
	}
}

// mbpsFigure is the median MB/s of m's runs with the range.
func mbpsFigure(m *measure) figure {
	lo, hi := m.rangeSecs()
	return figure{med: m.mbps(m.median().secs), lo: m.mbps(hi), hi: m.mbps(lo)}
}

// withoutCheckpoints writes a copy of word_count.yaml with state.enabled
// false: the same pipeline and state backend, no checkpoints.
func (r *runner) withoutCheckpoints() (string, error) {
	data, err := os.ReadFile(wordCountYAML)
	if err != nil {
		return "", err
	}
	conf, err := disableCheckpoints(string(data))
	if err != nil {
		return "", fmt.Errorf("%s: %w", wordCountYAML, err)
	}
	return writeConfig(r.tmp, "word_count_no_checkpoints.yaml", conf), nil
}

// disableCheckpoints turns `enabled: true` in the top-level state section
// of a config into `enabled: false`.
func disableCheckpoints(conf string) (string, error) {
	lines := strings.Split(conf, "\n")
	inState := false
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "state:"):
			inState = true
		case inState && len(l) > 0 && l[0] != ' ' && l[0] != '#':
			inState = false
		case inState && strings.HasPrefix(strings.TrimSpace(l), "enabled: true"):
			lines[i] = strings.Replace(l, "enabled: true", "enabled: false", 1)
			return strings.Join(lines, "\n"), nil
		}
	}
	return "", fmt.Errorf("no `enabled: true` in the state section")
}

func (r *runner) wordCountEnv(text, out, stateDir string, threads int, emit string) []string {
	return []string{"INPUT_FILE=" + text, "OUTPUT_FILE=" + out, "STATE_DIR=" + stateDir, "STATE_BACKEND=Memory",
		"CHECKPOINT_INTERVAL_MS=1000", "THREADS=" + strconv.Itoa(threads), "EMIT=" + emit}
}

// profileWordCount runs weir's word count once more with a CPU profile
// (weir run --cpuprofile) and reports the hot spots.
func (r *runner) profileWordCount(text string) {
	out := filepath.Join(r.tmp, "wc-prof.ndjson")
	stateDir, err := os.MkdirTemp(r.tmp, "state-")
	must(err)
	prof := filepath.Join(r.tmp, "wordcount-cpu.pprof")
	s := timed(r.wordCountEnv(text, out, stateDir, 1, "on_end"), r.weir, "run", "--progress", "never", "--cpuprofile", prof, wordCountYAML)
	os.Remove(out)
	top := func(args ...string) string {
		cmd := exec.Command("go", append([]string{"tool", "pprof"}, append(args, r.weir, prof)...)...)
		b, err := cmd.Output()
		if err != nil {
			return fmt.Sprintf("(go tool pprof failed: %v)", err)
		}
		// Drop the header lines (file, build id, time).
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		for i, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), "flat") {
				return strings.Join(lines[i:], "\n")
			}
		}
		return strings.Join(lines, "\n")
	}
	w := &r.report
	fmt.Fprintf(w, "### Where weir's word count spends its time (CPU profile, thread_num 1, emit on_end)\n\n")
	fmt.Fprintf(w, "One extra run (%.2f s) with `weir run --cpuprofile`. Reproduce: `INPUT_FILE=%s OUTPUT_FILE=/dev/null "+
		"THREADS=1 EMIT=on_end bin/weir run --cpuprofile cpu.pprof %s; go tool pprof -top bin/weir cpu.pprof`.\n\n", s.secs, text, wordCountYAML)
	fmt.Fprintf(w, "Functions by flat time (top 20):\n\n```\n%s\n```\n\n", top("-top", "-nodecount=20"))
	fmt.Fprintf(w, "By cumulative time (top 25):\n\n```\n%s\n```\n\n", top("-top", "-cum", "-nodecount=25"))
}

// parseCounts reads NDJSON lines {"word":W,"count":N}; with last set a word
// may appear many times and its last line counts, else every word must
// appear once.
func parseCounts(path string, last bool) map[string]int64 {
	f, err := os.Open(path)
	must(err)
	defer f.Close()
	counts := make(map[string]int64)
	sc := bufio.NewScanner(bufio.NewReaderSize(f, 1<<20))
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	line := 0
	for sc.Scan() {
		line++
		word, n, ok := parseLine(sc.Bytes())
		if !ok {
			fail("%s:%d: not a {\"word\":W,\"count\":N} line: %q", path, line, sc.Text())
		}
		if p, dup := counts[string(word)]; dup {
			if !last {
				fail("%s:%d: word %q appears twice (%d, then %d)", path, line, word, p, n)
			}
			counts[string(word)] = n
			continue
		}
		counts[string(word)] = n
	}
	must(sc.Err())
	return counts
}

// parseLine parses one output line. The fast path takes lines exactly as
// weir and the baseline write them; anything else goes through encoding/json.
func parseLine(l []byte) (word []byte, n int64, ok bool) {
	const pre, mid = `{"word":"`, `","count":`
	if bytes.HasPrefix(l, []byte(pre)) && bytes.HasSuffix(l, []byte("}")) {
		rest := l[len(pre) : len(l)-1]
		if i := bytes.Index(rest, []byte(mid)); i >= 0 && bytes.IndexByte(rest[:i], '\\') < 0 && bytes.IndexByte(rest[:i], '"') < 0 {
			v, err := strconv.ParseInt(string(rest[i+len(mid):]), 10, 64)
			if err == nil {
				return rest[:i], v, true
			}
		}
	}
	var rec struct {
		Word  *string `json:"word"`
		Count *int64  `json:"count"`
	}
	if err := json.Unmarshal(l, &rec); err != nil || rec.Word == nil || rec.Count == nil {
		return nil, 0, false
	}
	return []byte(*rec.Word), *rec.Count, true
}

// check fails the bench when got differs from want.
func check(got, want map[string]int64, who string) {
	var diffs []string
	for w, n := range want {
		if got[w] != n {
			diffs = append(diffs, fmt.Sprintf("%q: %d, want %d", w, got[w], n))
		}
	}
	for w, n := range got {
		if _, ok := want[w]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q: %d, want none", w, n))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		fail("%s: final counts differ from the baseline's in %d words, e.g. %s", who, len(diffs), strings.Join(diffs[:min(5, len(diffs))], "; "))
	}
}

// thousands formats n with thin spaces between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString(" ")
		}
		b.WriteRune(c)
	}
	return b.String()
}
