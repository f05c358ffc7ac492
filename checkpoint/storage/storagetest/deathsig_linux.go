package storagetest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill cmd if the test process dies first
// (a test timeout, a crash), so no server outlives its test.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
