package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFileToFileThroughBinary(t *testing.T) {
	dir := t.TempDir()
	var in strings.Builder
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&in, `{"id":%d,"name":"n%d"}`+"\n", i, i)
	}
	inPath := writeFile(t, dir, "in.ndjson", in.String())
	outPath := filepath.Join(dir, "out.ndjson")
	cfg := writeFile(t, dir, "p.yaml", `
health_check: {enabled: false}
streams:
  - input: {type: file, path: "${IN}", format: ndjson, batch_size: 1000}
    pipeline:
      thread_num: 3
      processors:
        - type: json_to_arrow
        - type: filter
          condition: 'id % 2 == 0'
        - type: mapping
          columns: {double: 'id * 2'}
        - type: arrow_to_json
    output: {type: file, path: "${OUT}", format: ndjson}
`)
	code, _, stderr := run(t, nil, []string{"IN=" + inPath, "OUT=" + outPath}, "run", "--progress", "never", cfg)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	data, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 10000 {
		t.Fatalf("got %d lines, want 10000", len(lines))
	}
	for i, l := range lines {
		id := 2 * i
		want := fmt.Sprintf(`{"id":%d,"name":"n%d","double":%d}`, id, id, 2*id)
		if l != want {
			t.Fatalf("line %d = %s, want %s (order must be preserved with thread_num 3)", i, l, want)
		}
	}
}

func TestStdinToStdoutThroughPipes(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "p.yaml", `
health_check: {enabled: false}
streams:
  - input: {type: stdin}
    pipeline:
      processors:
        - type: split
    output: {type: stdout}
`)
	code, stdout, stderr := run(t, strings.NewReader("a b  c\nd\n\ne f\n"), nil, "run", cfg)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if stdout != "a\nb\nc\nd\ne\nf\n" {
		t.Fatalf("stdout = %q", stdout)
	}
}

func TestBadConfigExitsTwoWithLocation(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "bad.yaml", `streams:
  - input:
      type: file
      path: x
    pipeline:
      thread_num: four
    output:
      type: stdout
`)
	for _, cmd := range []string{"run", "lint"} {
		code, stdout, stderr := run(t, nil, nil, cmd, cfg)
		stderr += stdout // lint reports on stdout
		if code != 2 {
			t.Fatalf("%s: exit %d, want 2\n%s", cmd, code, stderr)
		}
		want := cfg + `:6: streams[0].pipeline.thread_num: expected an integer, got "four"`
		if !strings.Contains(stderr, want) {
			t.Fatalf("%s: stderr does not contain %q:\n%s", cmd, want, stderr)
		}
	}
}

func TestSignalDrainsAndExitsZeroWithHealthAndMetrics(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	outPath := filepath.Join(dir, "out.txt")
	cfg := writeFile(t, dir, "p.yaml", fmt.Sprintf(`
health_check: {enabled: true, address: "%s"}
streams:
  - input: {type: generate, payload: 'n=${!count}', batch_size: 100, interval: 1ms}
    pipeline: {thread_num: 2}
    output: {type: file, path: %q, format: lines}
`, addr, outPath))
	p := start(t, nil, nil, "run", cfg)
	waitFor(t, 30*time.Second, "readiness", func() bool {
		code, _ := httpGet("http://" + addr + "/readiness")
		return code == 200
	})
	if code, body := httpGet("http://" + addr + "/health"); code != 200 || !strings.Contains(body, `"status":"running"`) {
		t.Fatalf("/health = %d %s", code, body)
	}
	if code, _ := httpGet("http://" + addr + "/liveness"); code != 200 {
		t.Fatalf("/liveness = %d", code)
	}
	waitFor(t, 30*time.Second, "records in metrics", func() bool {
		_, body := httpGet("http://" + addr + "/metrics")
		return strings.Contains(body, `weir_records_out_total{component="output.file",stream="stream-0"}`)
	})
	p.signal(syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.stderr.String())
	}
	data, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 100 {
		t.Fatalf("only %d lines written", len(lines))
	}
	for i, l := range lines {
		if l != "n="+strconv.Itoa(i+1) {
			t.Fatalf("line %d = %q: drained output must be complete and in order", i, l)
		}
	}
}
