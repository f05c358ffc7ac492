// Command runbench runs weir's benchmark workloads next to their
// hand-written baselines, in the same run, and writes a Markdown report.
//
//	go run ./bench/cmd/runbench -runs 3 -out bench/results/latest.md
//
// Every figure is the median of -runs runs with the min–max range; every
// weir figure is shown with its baseline or target and the ratio between
// them, and the report starts with a summary table of them all. The
// workloads:
//
//   - stateless pass-through (file → file) against a bufio line copy;
//   - generate → json_to_arrow → mapping → drop (engine cost per record);
//   - word count on a 50 MB Zipf text (examples/word_count.yaml with
//     checkpoints every second) against a hand-written Go word count, with
//     the final counts of every weir run checked against the baseline's,
//     and a CPU profile of weir's run (-profile);
//   - checkpoints of 100 k, 1 M and 10 M keys in the memory and Pebble
//     backends (bench/cmd/ckptbench), to a local directory and, when
//     WEIR_S3_ENDPOINT is set (bench/run.sh starts MinIO), to S3;
//   - Kafka → count → Kafka on an in-process kfake broker
//     (examples/exactly_once_kafka.yaml exactly-once and at-least-once)
//     against a plain franz-go loop (bench/cmd/kafkaloop);
//   - Benthos (Redpanda Connect's open core, built from bench/benthos) on
//     the jobs it can express, next to weir on the same inputs (benthos.go).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

var (
	runs    = flag.Int("runs", 3, "runs per measurement (median reported)")
	outPath = flag.String("out", "bench/results/latest.md", "report file")
	dataDir = flag.String("data", "bench/data", "generated inputs (kept between runs)")
	sizeMB  = flag.Int("size", 50, "input size in MB (pass-through, word count)")
	binDir  = flag.String("bin", "bin", "where binaries are built")
	big     = flag.Bool("big", false, "checkpoint 10 M keys like the smaller sizes (50 snapshots) instead of 10 (adds about 8 minutes)")
	profile = flag.Bool("profile", true, "profile one weir word count run and report its hot spots")
	only    = flag.String("only", "", "comma-separated sections to run (pass, gen, wordcount, checkpoint, kafka, benthos, session, kafkabenthos); default all")
)

// summaryRow is one line of the summary table.
type summaryRow struct {
	figure, weir, reference, ratio, met string
}

// runner holds what the sections share.
type runner struct {
	tmp     string
	weir    string
	report  bytes.Buffer // the sections, after the summary
	summary []summaryRow
	// passWeir is weir's pass-through of this run, shown next to Benthos's.
	passWeir *measure
}

func (r *runner) bin(name string) string { return filepath.Join(*binDir, name) }

func (r *runner) sum(figure, weir, reference, ratio, met string) {
	r.summary = append(r.summary, summaryRow{figure, weir, reference, ratio, met})
}

func main() {
	flag.Parse()
	start := time.Now()
	if s := os.Getenv("WEIR_BENCH_START"); s != "" {
		// bench/run.sh: count MinIO's start-up too.
		if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
			start = time.Unix(sec, 0)
		}
	}
	load0 := loadAvg()
	must(os.MkdirAll(*dataDir, 0o755))
	must(os.MkdirAll(*binDir, 0o755))
	must(os.MkdirAll(filepath.Dir(*outPath), 0o755))
	for _, b := range []string{"weir=./cmd/weir", "gen=./bench/cmd/gen", "bufcopy=./bench/cmd/bufcopy",
		"wordcount=./bench/cmd/wordcount", "ckptbench=./bench/cmd/ckptbench", "peakrss=./bench/cmd/peakrss",
		"kafkaloop=./bench/cmd/kafkaloop", "kfakebroker=./bench/cmd/kfakebroker", "sessionbase=./bench/cmd/sessionbase"} {
		name, pkg, _ := strings.Cut(b, "=")
		run("go", "build", "-o", filepath.Join(*binDir, name), pkg)
	}
	tmp, err := os.MkdirTemp("", "weir-bench-")
	must(err)
	tmpRoot = tmp
	defer os.RemoveAll(tmp)
	rssWrapper, rssDir = filepath.Join(*binDir, "peakrss"), tmp
	r := &runner{tmp: tmp, weir: filepath.Join(*binDir, "weir")}

	sections := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			sections[s] = true
		}
	}
	want := func(s string) bool { return len(sections) == 0 || sections[s] }
	if want("pass") {
		r.passThrough()
	}
	if want("benthos") {
		r.benthos()
	}
	if want("gen") {
		r.generate()
	}
	if want("wordcount") {
		r.wordCount()
	}
	if want("session") {
		r.sessions()
	}
	if want("checkpoint") {
		r.checkpoints()
	}
	if want("kafka") {
		r.kafka()
	}
	if want("kafkabenthos") {
		r.kafkaBenthos()
	}

	elapsed := time.Since(start)
	var out bytes.Buffer
	fmt.Fprintf(&out, "# weir benchmark results\n\n")
	fmt.Fprintf(&out, "- date: %s\n- machine: %s, %d cores, %s\n- go: %s\n- commit: %s\n- runs per figure: %d (median, min–max)\n",
		time.Now().UTC().Format(time.RFC3339), cpuModel(), runtime.NumCPU(), memTotal(), runtime.Version(), commit(), *runs)
	fmt.Fprintf(&out, "- load average (1 min) at start / end: %s / %s (the machine may be shared: ranges show the noise)\n", load0, loadAvg())
	fmt.Fprintf(&out, "- total time of this run (`make bench`, builds and MinIO start included): %s\n\n", elapsed.Round(time.Second))
	fmt.Fprintf(&out, "## Summary\n\n")
	fmt.Fprintf(&out, "Ratio: weir ÷ baseline for throughput (≥ target meets it); figure ÷ limit for limits (≤ 1 meets it).\n\n")
	fmt.Fprintf(&out, "| figure | weir | baseline / target | ratio | met? |\n|---|---:|---|---:|:---:|\n")
	for _, s := range r.summary {
		fmt.Fprintf(&out, "| %s | %s | %s | %s | %s |\n", s.figure, s.weir, s.reference, s.ratio, s.met)
	}
	fmt.Fprintln(&out)
	out.Write(r.report.Bytes())
	must(os.WriteFile(*outPath, out.Bytes(), 0o644))
	fmt.Print(out.String())
}

// passThrough: file (lines) → file (lines) against a bufio copy.
func (r *runner) passThrough() {
	lines := filepath.Join(*dataDir, fmt.Sprintf("lines-%dMB.txt", *sizeMB))
	if _, err := os.Stat(lines); err != nil {
		run(r.bin("gen"), "-kind", "lines", "-size", fmt.Sprintf("%dMB", *sizeMB), "-seed", "42", "-out", lines)
	}
	st, err := os.Stat(lines)
	must(err)
	nLines := countLines(lines)
	outFile := filepath.Join(r.tmp, "out.txt")
	base := &measure{name: "bufio line copy (baseline)", bytes: st.Size(), records: nLines}
	ours := &measure{name: "weir file → file", bytes: st.Size(), records: nLines}
	passCfg := writeConfig(r.tmp, "pass.yaml", fmt.Sprintf(`health_check: {enabled: false}
streams:
  - input: {type: file, path: %q, format: lines}
    output: {type: file, path: %q, format: lines, append: false}
`, lines, outFile))
	for i := 0; i < *runs; i++ {
		base.add(timed(nil, r.bin("bufcopy"), lines, outFile))
		ours.add(timed(nil, r.weir, "run", "--progress", "never", passCfg))
		if n := countLines(outFile); n != nLines {
			fail("weir pass-through wrote %d lines, want %d", n, nLines)
		}
	}
	os.Remove(outFile)
	r.passWeir = ours
	table(&r.report, "Stateless pass-through (file → file, "+fmt.Sprint(*sizeMB)+" MB of text lines)", base, ours)
	ratio := ours.ratio(base)
	r.sum("Pass-through file → file, MB/s", fmt.Sprintf("%.1f", ours.mbps(ours.median().secs)),
		fmt.Sprintf("bufio copy %.1f MB/s; target ≥ 0.5", base.mbps(base.median().secs)), fmt.Sprintf("%.2f", ratio), yesNo(ratio >= 0.5))
}

// generate: generate → json_to_arrow → mapping → drop (engine overhead
// per record).
func (r *runner) generate() {
	const genCount = 5_000_000
	genCfg := writeConfig(r.tmp, "gen.yaml", fmt.Sprintf(`health_check: {enabled: false}
streams:
  - input: {type: generate, payload: '{"id":${!count}}', count: %d, batch_size: 8192}
    pipeline:
      processors:
        - type: json_to_arrow
        - type: mapping
          columns: {double: "id * 2"}
    output: {type: drop}
`, genCount))
	gen := &measure{name: "weir generate → json_to_arrow → mapping → drop", records: genCount}
	for i := 0; i < *runs; i++ {
		gen.add(timed(nil, r.weir, "run", "--progress", "never", genCfg))
	}
	single(&r.report, "Generate → mapping → drop (5 M records)", gen)
	r.sum("Generate → json_to_arrow → mapping → drop, records/s", fmt.Sprintf("%.0f", gen.rps(gen.median().secs)),
		"no baseline (engine cost per record)", "—", "—")
}

func table(w *bytes.Buffer, title string, base, ours *measure) {
	bm := base.median()
	fmt.Fprintf(w, "## %s\n\n", title)
	fmt.Fprintf(w, "| program | MB/s | records/s | time s (min–max) | peak RSS MB | ratio to baseline |\n|---|---:|---:|---:|---:|---:|\n")
	for _, m := range []*measure{base, ours} {
		md := m.median()
		lo, hi := m.rangeSecs()
		ratio := bm.secs / md.secs
		fmt.Fprintf(w, "| %s | %.1f | %.0f | %.2f (%.2f–%.2f) | %.0f | %.2f |\n", m.name, m.mbps(md.secs), m.rps(md.secs), md.secs, lo, hi, m.medianRSS(), ratio)
	}
	fmt.Fprintln(w)
}

func single(w *bytes.Buffer, title string, m *measure) {
	md := m.median()
	lo, hi := m.rangeSecs()
	fmt.Fprintf(w, "## %s\n\n| program | records/s | time s (min–max) | peak RSS MB |\n|---|---:|---:|---:|\n", title)
	fmt.Fprintf(w, "| %s | %.0f | %.2f (%.2f–%.2f) | %.0f |\n\n", m.name, m.rps(md.secs), md.secs, lo, hi, m.medianRSS())
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func writeConfig(dir, name, body string) string {
	p := filepath.Join(dir, name)
	must(os.WriteFile(p, []byte(body), 0o644))
	return p
}

func countLines(path string) int64 {
	data, err := os.ReadFile(path)
	must(err)
	return int64(bytes.Count(data, []byte{'\n'}))
}

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fail("%s %v: %v", name, args, err)
	}
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "model name") {
			_, v, _ := strings.Cut(l, ":")
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	var kb int64
	fmt.Sscanf(strings.SplitN(string(data), "\n", 2)[0], "MemTotal: %d kB", &kb)
	return fmt.Sprintf("%.0f GiB RAM", float64(kb)/1024/1024)
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(data))[0]
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	// The report and plot a previous run wrote do not count as changes.
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}

// tmpRoot is the scratch directory, removed by fail too.
var tmpRoot string

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "runbench: "+format+"\n", args...)
	if tmpRoot != "" {
		os.RemoveAll(tmpRoot)
	}
	os.Exit(1)
}
