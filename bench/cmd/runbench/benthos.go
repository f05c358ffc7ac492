package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	// benthosModule is the small module that pins Benthos (its own go.mod,
	// so the main module's `go test ./...` never sees it).
	benthosModule = "bench/benthos"
	benthosPkg    = "github.com/redpanda-data/benthos/v4/cmd/benthos"
	// benthosWordMB is the prefix of the Zipf text the split and word count
	// jobs read: Benthos handles one message per word at ~0.1–0.2 M words/s,
	// so the whole 50 MB text would take minutes per run.
	benthosWordMB = 5
)

// benthos runs Redpanda Connect's open core, Benthos, on the pipelines it
// can express (bench/benthos/configs), next to weir on the same inputs:
// file → file pass-through, file → split into words → file, and a word
// count with a memory cache (get, +1, set, one thread). If Benthos cannot be
// built the section is skipped with the error in the report.
func (r *runner) benthos() {
	bin, err := r.buildBenthos()
	if err != nil {
		fmt.Fprintf(os.Stderr, "runbench: Benthos skipped: %v\n", err)
		fmt.Fprintf(&r.report, "## Benthos (Redpanda Connect's open core)\n\nSkipped: Benthos could not be built from `%s`:\n\n```\n%s\n```\n\n",
			benthosModule, tail(err.Error(), 3000))
		r.sum("Pass-through: weir vs Benthos, MB/s", "—", "Benthos not built (see its section); target: ahead of Redpanda Connect", "—", "skipped")
		return
	}
	configs := filepath.Join(benthosModule, "configs")
	benthosRun := func(config, in, out string) sample {
		os.Remove(out)
		return timed([]string{"INPUT_FILE=" + in, "OUTPUT_FILE=" + out}, bin, "-c", filepath.Join(configs, config))
	}
	out := filepath.Join(r.tmp, "benthos-out.txt")

	// 1. Pass-through on the 50 MB lines file.
	lines := r.linesInput()
	st, err := os.Stat(lines)
	must(err)
	nLines := countLines(lines)
	bPass := &measure{name: "Benthos file → file (`configs/pass.yaml`)", bytes: st.Size(), records: nLines}
	wPass := r.passWeir
	for i := 0; i < *runs; i++ {
		bPass.add(benthosRun("pass.yaml", lines, out))
		if n := countLines(out); n != nLines {
			fail("Benthos pass-through wrote %d lines, want %d", n, nLines)
		}
	}
	if wPass == nil {
		wPass = &measure{name: "weir file → file", bytes: st.Size(), records: nLines}
		cfg := r.passConfig(lines, out)
		for i := 0; i < *runs; i++ {
			wPass.add(timed(nil, r.weir, "run", "--progress", "never", cfg))
			if n := countLines(out); n != nLines {
				fail("weir pass-through wrote %d lines, want %d", n, nLines)
			}
		}
	}

	// 2. and 3. read a prefix of the Zipf text, cut at a line end.
	text := filepath.Join(r.tmp, fmt.Sprintf("zipf-%dMB-prefix.txt", benthosWordMB))
	prefixFile(r.zipfInput(), text, benthosWordMB*1_000_000)
	st, err = os.Stat(text)
	must(err)
	want := fieldCounts(text)
	var words int64
	for _, n := range want {
		words += n
	}
	m := func(name string) *measure { return &measure{name: name, bytes: st.Size(), records: words} }
	bSplit := m("Benthos file → split → file (`configs/split.yaml`)")
	wSplit := m("weir file → split → file (thread_num 1)")
	bCount := m("Benthos word count, memory cache get/+1/set, 1 thread (`configs/wordcount.yaml`)")
	wCount := m("weir word_count.yaml, thread_num 1, emit on_update, checkpoints 1 s")
	splitCfg := writeConfig(r.tmp, "split.yaml", fmt.Sprintf(`health_check: {enabled: false}
streams:
  - input: {type: file, path: %q, format: lines}
    pipeline:
      thread_num: 1
      processors:
        - type: split
    output: {type: file, path: %q, format: lines, append: false}
`, text, out))
	for i := 0; i < *runs; i++ {
		bSplit.add(benthosRun("split.yaml", text, out))
		if n := countLines(out); n != words {
			fail("Benthos split wrote %d words, want %d", n, words)
		}
		os.Remove(out)
		wSplit.add(timed(nil, r.weir, "run", "--progress", "never", splitCfg))
		if n := countLines(out); n != words {
			fail("weir split wrote %d words, want %d", n, words)
		}
		bCount.add(benthosRun("wordcount.yaml", text, out))
		check(lastCounts(out), want, bCount.name)
		os.Remove(out)
		stateDir, err := os.MkdirTemp(r.tmp, "state-")
		must(err)
		wCount.add(timed(r.wordCountEnv(text, out, stateDir, 1, "on_update"), r.weir, "run", "--progress", "never", wordCountYAML))
		check(parseCounts(out, true), want, wCount.name)
		os.RemoveAll(stateDir)
	}
	os.Remove(out)

	w := &r.report
	fmt.Fprintf(w, "## Benthos (Redpanda Connect's open core) on the same jobs\n\n")
	fmt.Fprintf(w, "Benthos %s, built from `%s` (`go build %s`), configs in `%s`, one pipeline thread. "+
		"Pass-through reads the %d MB lines file; split and word count read the first %d MB of the Zipf text "+
		"(%s words, %d distinct), because Benthos makes one message per word. Checked in every run: "+
		"line counts (pass-through), one output line per word (split), and the final count of every word, "+
		"the last line of each word (word count), against `strings.Fields` counts of the same input.\n\n",
		benthosVersion(), benthosModule, benthosPkg, configs, *sizeMB, benthosWordMB, thousands(words), len(want))
	fmt.Fprintf(w, "How the pipelines differ: Benthos reads one message per line (`scanner: lines`); split is a "+
		"`mapping` (`re_find_all(\"\\\\S+\")`, joined by newlines) then `unarchive: lines`, one message per word; "+
		"the word count adds, per word inside `for_each` (a batch is one line's words and each processor runs over the "+
		"whole batch, so without it a word twice in a line loses an update), `cache get` (a miss is caught as 0), "+
		"+1, `cache set` on a `memory` cache and writes `WORD COUNT`, so like weir's `emit: on_update` it writes "+
		"one line per word occurrence, but has no checkpoints (weir's run checkpoints every second). weir batches "+
		"lines into Arrow record batches and its `split` processor makes one row per word.\n\n")
	fmt.Fprintf(w, "| job | program | MB/s | records/s | time s (min–max) | peak RSS MB | weir ÷ Benthos |\n|---|---|---:|---:|---:|---:|---:|\n")
	row := func(job string, mm *measure, ratio string) {
		md := mm.median()
		lo, hi := mm.rangeSecs()
		fmt.Fprintf(w, "| %s | %s | %.1f | %s | %.2f (%.2f–%.2f) | %.0f | %s |\n", job, mm.name, mm.mbps(md.secs),
			thousands(int64(mm.rps(md.secs))), md.secs, lo, hi, mm.medianRSS(), ratio)
	}
	for _, j := range []struct {
		job  string
		b, o *measure
	}{{"pass-through (lines/s)", bPass, wPass}, {"split (words/s)", bSplit, wSplit}, {"word count (words/s)", bCount, wCount}} {
		row(j.job, j.b, "—")
		row(j.job, j.o, fmt.Sprintf("%.2f", j.o.ratio(j.b)))
	}
	fmt.Fprintln(w)

	mb := func(mm *measure) string { return fmt.Sprintf("%.1f", mm.mbps(mm.median().secs)) }
	ratio := wPass.ratio(bPass)
	r.sum("Pass-through: weir vs Benthos, MB/s", mb(wPass),
		fmt.Sprintf("Benthos %s MB/s; target: ahead of Redpanda Connect", mb(bPass)), fmt.Sprintf("%.2f", ratio), yesNo(ratio > 1))
	r.sum("Split file → words → file: weir vs Benthos, words/s", thousands(int64(wSplit.rps(wSplit.median().secs))),
		fmt.Sprintf("Benthos %s words/s", thousands(int64(bSplit.rps(bSplit.median().secs)))), fmt.Sprintf("%.2f", wSplit.ratio(bSplit)), "—")
	r.sum("Word count, 1 thread, per-word output: weir vs Benthos memory cache, words/s", thousands(int64(wCount.rps(wCount.median().secs))),
		fmt.Sprintf("Benthos %s words/s", thousands(int64(bCount.rps(bCount.median().secs)))), fmt.Sprintf("%.2f", wCount.ratio(bCount)), "—")
}

// buildBenthos builds the Benthos CLI into the bin dir from bench/benthos,
// or reuses the binary already there.
func (r *runner) buildBenthos() (string, error) {
	bin, err := filepath.Abs(r.bin("benthos"))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	fmt.Fprintf(os.Stderr, "runbench: building Benthos in %s (a minute or so the first time)\n", benthosModule)
	cmd := exec.Command("go", "build", "-o", bin, benthosPkg)
	cmd.Dir = benthosModule
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("cd %s && go build -o %s %s: %v\n%s", benthosModule, bin, benthosPkg, err, buf.String())
	}
	return bin, nil
}

// benthosVersion is the version bench/benthos/go.mod pins.
func benthosVersion() string {
	data, err := os.ReadFile(filepath.Join(benthosModule, "go.mod"))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && strings.HasSuffix(f[len(f)-2], "redpanda-data/benthos/v4") {
			return f[len(f)-1]
		}
	}
	return "?"
}

// linesInput is the pass-through's input, generated if missing.
func (r *runner) linesInput() string {
	lines := filepath.Join(*dataDir, fmt.Sprintf("lines-%dMB.txt", *sizeMB))
	if _, err := os.Stat(lines); err != nil {
		run(r.bin("gen"), "-kind", "lines", "-size", fmt.Sprintf("%dMB", *sizeMB), "-seed", "42", "-out", lines)
	}
	return lines
}

// zipfInput is the word count's input, generated if missing.
func (r *runner) zipfInput() string {
	text := filepath.Join(*dataDir, fmt.Sprintf("zipf-%dMB-v%d-s%d.txt", *sizeMB, zipfVocab, zipfSeed))
	if _, err := os.Stat(text); err != nil {
		run(r.bin("gen"), "-kind", "zipf", "-size", fmt.Sprintf("%dMB", *sizeMB), "-vocab", fmt.Sprint(zipfVocab),
			"-seed", fmt.Sprint(zipfSeed), "-out", text)
	}
	return text
}

// passConfig is weir's file → file pass-through.
func (r *runner) passConfig(in, out string) string {
	return writeConfig(r.tmp, "pass.yaml", fmt.Sprintf(`health_check: {enabled: false}
streams:
  - input: {type: file, path: %q, format: lines}
    output: {type: file, path: %q, format: lines, append: false}
`, in, out))
}

// prefixFile copies the first n bytes of src to dst, cut after the last
// newline.
func prefixFile(src, dst string, n int64) {
	f, err := os.Open(src)
	must(err)
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, n))
	must(err)
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	}
	must(os.WriteFile(dst, data, 0o644))
}

// fieldCounts counts the words (strings.Fields) of a file.
func fieldCounts(path string) map[string]int64 {
	data, err := os.ReadFile(path)
	must(err)
	counts := make(map[string]int64)
	for _, w := range strings.Fields(string(data)) {
		counts[w]++
	}
	return counts
}

// lastCounts reads Benthos's word count output, "WORD COUNT" per line, and
// returns the last count of each word.
func lastCounts(path string) map[string]int64 {
	f, err := os.Open(path)
	must(err)
	defer f.Close()
	counts := make(map[string]int64)
	sc := bufio.NewScanner(bufio.NewReaderSize(f, 1<<20))
	for line := 1; sc.Scan(); line++ {
		word, num, ok := strings.Cut(sc.Text(), " ")
		n, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil {
			fail("%s:%d: not a \"WORD COUNT\" line: %q", path, line, sc.Text())
		}
		counts[word] = n
	}
	must(sc.Err())
	return counts
}
