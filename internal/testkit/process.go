package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Generous limits: tests share two busy cores with other test runs.
const (
	// StartTimeout bounds the wait for a started server to be ready.
	StartTimeout = 60 * time.Second
	// ExitTimeout bounds the wait for a process to exit.
	ExitTimeout = 60 * time.Second
)

// Go runs the go command with args and extra environment, and returns its
// output in the error if it fails.
func Go(env []string, args ...string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := exec.Command(goTool, args...)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// GoBuild builds the main package pkg into out as the release builds do
// (CGO off, -trimpath), with extra go build flags (-tags, -ldflags...).
func GoBuild(out, pkg string, flags ...string) error {
	args := append(append([]string{"build", "-trimpath"}, flags...), "-o", out, pkg)
	return Go([]string{"CGO_ENABLED=0"}, args...)
}

// Process is a binary running as a child process.
type Process struct {
	Cmd    *exec.Cmd
	Stdout *LogBuffer
	Stderr *LogBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, set before done is closed
}

// Launch starts bin with exactly env as its environment (nothing leaks in
// from the test's own, so a stray OXY_ variable cannot change the result).
// At the end of the test it kills the process and any children it started,
// and logs their output if the test failed.
func Launch(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{Stdout: &LogBuffer{}, Stderr: &LogBuffer{}, done: make(chan struct{})}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Env = env
	p.Cmd.Dir = filepath.Dir(bin)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Stdout, p.Stderr
	ownGroup(p.Cmd)
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", filepath.Base(bin), err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		killGroup(p.Cmd)
		<-p.done
		if t.Failed() {
			t.Logf("%s stdout:\n%s\nstderr:\n%s", filepath.Base(bin), p.Stdout, p.Stderr)
		}
	})
	return p
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the process's exit error (nil for status 0); valid once Exited.
func (p *Process) Err() error { return p.err }

// Kill kills the process unless it has exited, and waits for it.
func (p *Process) Kill() {
	if !p.Exited() {
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// Wait waits up to timeout for the process to exit and returns its exit code.
func (p *Process) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %v; stderr:\n%s", timeout, p.Stderr)
		return -1
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sending %v: %v", sig, err)
	}
}

// Stop sends SIGTERM, as the platforms do, and fails the test unless the
// process then exits cleanly (graceful shutdown, status 0).
func (p *Process) Stop(t testing.TB) {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("process exited with %v after SIGTERM; want a clean exit\n%s", p.err, p.Stderr)
		}
	case <-time.After(ExitTimeout):
		p.Kill()
		t.Errorf("process still running %v after SIGTERM\n%s", ExitTimeout, p.Stderr)
	}
}

// StartServer launches bin with env plus portVar set to a free port, as
// WithFreePort does, and waits until ready reports the server ready. It
// retries with another port when the process exits saying the port was
// taken. It is killed at the end of the test; callers that require a
// graceful exit add t.Cleanup(p.Stop).
func StartServer(t testing.TB, bin, portVar string, env []string, ready func(p *Process, port int) bool) (*Process, int) {
	t.Helper()
	return StartOnFreePort(t, func(port int) *Process {
		return Launch(t, bin, append(append([]string(nil), env...), fmt.Sprintf("%s=%d", portVar, port)))
	}, ready)
}

// StartOnFreePort is StartServer for a server told its port another way (a
// flag, a config file): launch starts it on the port it is given.
func StartOnFreePort(t testing.TB, launch func(port int) *Process, ready func(p *Process, port int) bool) (*Process, int) {
	t.Helper()
	var p *Process
	var port int
	WithFreePort(t, func(n int) error {
		q := launch(n)
		name := filepath.Base(q.Cmd.Path)
		if !WaitUntil(StartTimeout, func() bool { return q.Exited() || ready(q, n) }) {
			q.Kill()
			return fmt.Errorf("%s not ready after %v; stderr:\n%s", name, StartTimeout, q.Stderr)
		}
		if q.Exited() {
			return fmt.Errorf("%s exited before it was ready (%v); stderr:\n%s", name, q.err, q.Stderr)
		}
		p, port = q, n
		return nil
	})
	return p, port
}
