// Command peakrss runs a command and writes its wall time and peak resident
// set size to a file, for the benchmark driver:
//
//	peakrss OUT COMMAND [ARGS...]      OUT gets "<seconds> <peak RSS KiB>\n"
//
// Standard input, output and error are the command's; peakrss exits with the
// command's status.
//
// Why a separate process: Go starts commands with vfork (CLONE_VM), and on
// Linux exec records the high-water RSS of the memory it replaces (the
// parent's, shared until then) into the child's ru_maxrss. A command started
// by the benchmark driver, which holds parsed results in memory, would
// report at least the driver's peak. Started from this small process, it
// reports at least a few MB (peakrss's own RSS), and its own peak above that.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: peakrss OUT COMMAND [ARGS...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	t0 := time.Now()
	err := cmd.Run()
	secs := time.Since(t0).Seconds()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
		if code < 0 {
			code = 1
		}
	case err != nil:
		fmt.Fprintln(os.Stderr, "peakrss:", err)
		os.Exit(1)
	}
	var kb int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		kb = ru.Maxrss // KiB on Linux
	}
	if err := os.WriteFile(os.Args[1], fmt.Appendf(nil, "%.6f %d\n", secs, kb), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "peakrss:", err)
		os.Exit(1)
	}
	os.Exit(code)
}
