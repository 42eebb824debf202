//go:build unix

package testkit

import (
	"os/exec"
	"syscall"
)

// ownGroup puts cmd in a process group of its own, so that killGroup also
// ends the children it starts (the Lambda emulator starts the bootstrap).
func ownGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

func killGroup(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
