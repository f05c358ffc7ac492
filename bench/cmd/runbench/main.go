// Command runbench runs weir's benchmark workloads next to their
// hand-written baselines, in the same run, and writes a Markdown report.
//
//	go run ./bench/cmd/runbench -runs 3 -out bench/results/latest.md
//
// Every figure is the median of -runs runs with the min–max range; every
// weir figure is shown with its baseline and the ratio between them.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"
)

type sample struct {
	secs  float64
	rssMB float64
}

type measure struct {
	name    string
	samples []sample
	bytes   int64 // input bytes per run (for MB/s)
	records int64 // records per run (for records/s)
}

func (m *measure) median() sample {
	s := append([]sample(nil), m.samples...)
	sort.Slice(s, func(i, j int) bool { return s[i].secs < s[j].secs })
	return s[len(s)/2]
}

func (m *measure) rangeSecs() (lo, hi float64) {
	lo, hi = m.samples[0].secs, m.samples[0].secs
	for _, s := range m.samples {
		lo = min(lo, s.secs)
		hi = max(hi, s.secs)
	}
	return
}

func (m *measure) mbps(secs float64) float64 { return float64(m.bytes) / 1e6 / secs }
func (m *measure) rps(secs float64) float64  { return float64(m.records) / secs }

var (
	runs    = flag.Int("runs", 3, "runs per measurement (median reported)")
	outPath = flag.String("out", "bench/results/latest.md", "report file")
	dataDir = flag.String("data", "bench/data", "generated inputs (kept between runs)")
	sizeMB  = flag.Int("size", 50, "input size in MB")
	binDir  = flag.String("bin", "bin", "where binaries are built")
)

func main() {
	flag.Parse()
	must(os.MkdirAll(*dataDir, 0o755))
	must(os.MkdirAll(*binDir, 0o755))
	must(os.MkdirAll(filepath.Dir(*outPath), 0o755))
	for _, b := range []string{"weir=./cmd/weir", "gen=./bench/cmd/gen", "bufcopy=./bench/cmd/bufcopy"} {
		name, pkg, _ := strings.Cut(b, "=")
		run("go", "build", "-o", filepath.Join(*binDir, name), pkg)
	}
	weir := filepath.Join(*binDir, "weir")

	lines := filepath.Join(*dataDir, fmt.Sprintf("lines-%dMB.txt", *sizeMB))
	if _, err := os.Stat(lines); err != nil {
		run(filepath.Join(*binDir, "gen"), "-kind", "lines", "-size", fmt.Sprintf("%dMB", *sizeMB), "-seed", "42", "-out", lines)
	}
	st, err := os.Stat(lines)
	must(err)
	nLines := countLines(lines)
	tmp, err := os.MkdirTemp("", "weir-bench-")
	must(err)
	defer os.RemoveAll(tmp)

	var report bytes.Buffer
	fmt.Fprintf(&report, "# weir benchmark results\n\n")
	fmt.Fprintf(&report, "- date: %s\n- machine: %s, %d cores, %s\n- go: %s\n- commit: %s\n- runs per figure: %d (median, min–max)\n\n",
		time.Now().UTC().Format(time.RFC3339), cpuModel(), runtime.NumCPU(), memTotal(), runtime.Version(), commit(), *runs)

	// 1. Pass-through: file (lines) → file (lines) against a bufio copy.
	outFile := filepath.Join(tmp, "out.txt")
	base := &measure{name: "bufio line copy (baseline)", bytes: st.Size(), records: nLines}
	ours := &measure{name: "weir file → file", bytes: st.Size(), records: nLines}
	passCfg := writeConfig(tmp, "pass.yaml", fmt.Sprintf(`health_check: {enabled: false}
streams:
  - input: {type: file, path: %q, format: lines}
    output: {type: file, path: %q, format: lines, append: false}
`, lines, outFile))
	for i := 0; i < *runs; i++ {
		base.samples = append(base.samples, timed(filepath.Join(*binDir, "bufcopy"), lines, outFile))
		ours.samples = append(ours.samples, timed(weir, "run", "--progress", "never", passCfg))
		if n := countLines(outFile); n != nLines {
			fail("weir pass-through wrote %d lines, want %d", n, nLines)
		}
	}
	table(&report, "Stateless pass-through (file → file, "+fmt.Sprint(*sizeMB)+" MB of text lines)", base, ours)

	// 2. generate → mapping → drop (engine overhead per record).
	const genCount = 5_000_000
	genCfg := writeConfig(tmp, "gen.yaml", fmt.Sprintf(`health_check: {enabled: false}
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
		gen.samples = append(gen.samples, timed(weir, "run", "--progress", "never", genCfg))
	}
	single(&report, "Generate → mapping → drop (5 M records)", gen)

	must(os.WriteFile(*outPath, report.Bytes(), 0o644))
	fmt.Print(report.String())
}

func table(w *bytes.Buffer, title string, base, ours *measure) {
	bm := base.median()
	fmt.Fprintf(w, "## %s\n\n", title)
	fmt.Fprintf(w, "| program | MB/s | records/s | time s (min–max) | peak RSS MB | ratio to baseline |\n|---|---:|---:|---:|---:|---:|\n")
	for _, m := range []*measure{base, ours} {
		md := m.median()
		lo, hi := m.rangeSecs()
		ratio := bm.secs / md.secs
		fmt.Fprintf(w, "| %s | %.1f | %.0f | %.2f (%.2f–%.2f) | %.0f | %.2f |\n", m.name, m.mbps(md.secs), m.rps(md.secs), md.secs, lo, hi, md.rssMB, ratio)
	}
	fmt.Fprintln(w)
}

func single(w *bytes.Buffer, title string, m *measure) {
	md := m.median()
	lo, hi := m.rangeSecs()
	fmt.Fprintf(w, "## %s\n\n| program | records/s | time s (min–max) | peak RSS MB |\n|---|---:|---:|---:|\n", title)
	fmt.Fprintf(w, "| %s | %.0f | %.2f (%.2f–%.2f) | %.0f |\n\n", m.name, m.rps(md.secs), md.secs, lo, hi, md.rssMB)
}

// timed runs a command and returns its wall time and peak RSS.
func timed(name string, args ...string) sample {
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		fail("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	secs := time.Since(t0).Seconds()
	rss := 0.0
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	return sample{secs: secs, rssMB: rss}
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

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "runbench: "+format+"\n", args...)
	os.Exit(1)
}
