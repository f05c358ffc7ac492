package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// sample is one timed run of a program.
type sample struct {
	secs   float64
	rssMB  float64
	stderr string
}

// measure is the runs of one program on one workload.
type measure struct {
	name    string
	samples []sample
	bytes   int64 // input bytes per run (for MB/s)
	records int64 // records per run (for records/s)
}

func (m *measure) add(s sample) { m.samples = append(m.samples, s) }

// median returns the sample of median time.
func (m *measure) median() sample {
	s := slices.Clone(m.samples)
	slices.SortFunc(s, func(a, b sample) int { return cmpFloat(a.secs, b.secs) })
	return s[(len(s)-1)/2]
}

func (m *measure) rangeSecs() (lo, hi float64) {
	lo, hi = m.samples[0].secs, m.samples[0].secs
	for _, s := range m.samples {
		lo = min(lo, s.secs)
		hi = max(hi, s.secs)
	}
	return
}

// medianRSS is the median of the runs' peak RSS.
func (m *measure) medianRSS() float64 {
	xs := make([]float64, len(m.samples))
	for i, s := range m.samples {
		xs[i] = s.rssMB
	}
	return stat(xs).med
}

func (m *measure) mbps(secs float64) float64 { return float64(m.bytes) / 1e6 / secs }
func (m *measure) rps(secs float64) float64  { return float64(m.records) / secs }

// ratio is the throughput of m relative to base (median times).
func (m *measure) ratio(base *measure) float64 { return base.median().secs / m.median().secs }

// figure is the median and range of one number over the runs.
type figure struct{ med, lo, hi float64 }

func stat(xs []float64) figure {
	if len(xs) == 0 {
		return figure{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return figure{med: s[(len(s)-1)/2], lo: s[0], hi: s[len(s)-1]}
}

// format prints the median with the range, e.g. "1.23 (1.20–1.31)".
func (f figure) format(verb string) string {
	if f.lo == f.hi {
		return fmt.Sprintf(verb, f.med)
	}
	return fmt.Sprintf(verb+" ("+verb+"–"+verb+")", f.med, f.lo, f.hi)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// rssWrapper is the peakrss binary that timed and output run commands
// through (see bench/cmd/peakrss for why), and rssDir where it reports.
var rssWrapper, rssDir string

// timed runs a command with extra environment variables and returns its
// wall time, peak RSS and standard error. A failed command fails the bench.
func timed(env []string, name string, args ...string) sample {
	var stderr bytes.Buffer
	s := runMeasured(env, nil, &stderr, name, args...)
	s.stderr = stderr.String()
	return s
}

// output runs a command and returns its standard output and peak RSS.
func output(env []string, name string, args ...string) ([]byte, float64) {
	var stdout, stderr bytes.Buffer
	s := runMeasured(env, &stdout, &stderr, name, args...)
	return stdout.Bytes(), s.rssMB
}

// runMeasured runs a command through the peakrss wrapper.
func runMeasured(env []string, stdout, stderr *bytes.Buffer, name string, args ...string) sample {
	f, err := os.CreateTemp(rssDir, "rss-")
	must(err)
	f.Close()
	defer os.Remove(f.Name())
	cmd := exec.Command(rssWrapper, append([]string{f.Name(), name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		fail("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(stderr.String(), 4000))
	}
	data, err := os.ReadFile(f.Name())
	must(err)
	var secs float64
	var kb int64
	if _, err := fmt.Sscanf(string(data), "%f %d", &secs, &kb); err != nil {
		fail("peakrss report %q: %v", data, err)
	}
	return sample{secs: secs, rssMB: float64(kb) / 1024}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
