package cli

import (
	"os"
	"path/filepath"
	"testing"
)

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLint(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", `streams:
  - input: {type: test_in, path: in.txt}
    output: {type: test_out}
`)
	warned := writeFile(t, dir, "warned.yaml", `state: {enabled: true, exactly_once: true}
streams:
  - input: {type: test_in, path: in.txt}
    output: {type: test_out}
`)
	bad := writeFile(t, dir, "bad.yaml", `streams:
  - input: {type: test_in}
    pipeline: {thread_num: four}
    output: {type: test_ou}
`)

	code, out, stderr := run("lint", good, warned)
	want := good + ": ok\n" + warned + ": ok\n" +
		"warning: " + warned + `:4: streams[0].output: state.exactly_once is true but output "test_out" is at-least-once` + "\n"
	if code != ExitOK || out != want || stderr != "" {
		t.Errorf("exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, out, want, stderr)
	}

	missing := filepath.Join(dir, "missing.yaml")
	code, out, stderr = run("lint", good, bad, missing)
	want = good + ": ok\n" +
		bad + `:2: streams[0].input: missing required field "path"` + "\n" +
		bad + `:3: streams[0].pipeline.thread_num: expected an integer, got "four"` + "\n" +
		bad + `:4: streams[0].output.type: unknown output type "test_ou"; expected one of: test_out, test_txn; did you mean "test_out"?` + "\n" +
		"load config: open " + missing + ": no such file or directory\n"
	wantErr := "weir: lint: invalid config: " + bad + ", " + missing + "\n"
	if code != ExitConfig || out != want || stderr != wantErr {
		t.Errorf("exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s", code, out, want, stderr, wantErr)
	}

	if code, _, _ := run("lint"); code != ExitFailure {
		t.Errorf("lint without files: exit %d", code)
	}
}
