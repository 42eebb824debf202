package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/serve"
)

// Generous limits: these tests share two busy cores with other test runs, so
// they wait for events (a log line, an exit) and never assert on speed.
const (
	startTimeout = 30 * time.Second
	exitTimeout  = 45 * time.Second
)

// Values stamped into the test binary with -ldflags -X, as `make build` does.
const (
	testVersion = "1.2.3"
	testCommit  = "0123abc"
	testDate    = "2026-01-02T03:04:05Z"
)

const corePkg = "github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// serverBinary builds this package's command once per test binary, with the
// version variables stamped the way release builds stamp them.
func serverBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "oxy-server-test-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "chatgpt_reverse_proxy")
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		}
		ldflags := fmt.Sprintf("-X %[1]s.Version=%[2]s -X %[1]s.Commit=%[3]s -X %[1]s.Date=%[4]s",
			corePkg, testVersion, testCommit, testDate)
		cmd := exec.Command(goTool, "build", "-ldflags", ldflags, "-o", built.path, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatalf("building the server binary: %v", built.err)
	}
	return built.path
}

// logBuffer is a goroutine-safe io.Writer that keeps everything written to
// it (a server's stderr), so a test can wait for a line to appear.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor reports whether any of subs appears in the buffer within timeout.
func (b *logBuffer) waitFor(timeout time.Duration, subs ...string) bool {
	return waitUntil(timeout, func() bool {
		s := b.String()
		return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
	})
}

// waitUntil polls cond until it holds or timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Markers of the startup line in either log format.
var listeningLine = []string{"msg=listening", `"msg":"listening"`}

// freePort returns a loopback port that was free a moment ago. Callers retry
// when another process takes it first.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func environ(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// withListenAddr returns env plus OXY_HOST=127.0.0.1 and OXY_PORT=port.
func withListenAddr(env map[string]string, port int) map[string]string {
	env = maps.Clone(env)
	if env == nil {
		env = map[string]string{}
	}
	env["OXY_HOST"] = "127.0.0.1"
	env["OXY_PORT"] = strconv.Itoa(port)
	return env
}

// startInProcess runs the server platform in this process through serve.Run,
// exactly as main does, with env as its whole environment. It returns the
// proxy's base URL ("http://127.0.0.1:PORT") and its log output, and stops the
// server when the test ends.
func startInProcess(t *testing.T, env map[string]string) (string, *logBuffer) {
	t.Helper()
	for range 5 {
		port := freePort(t)
		vars := withListenAddr(env, port)
		lookup := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
		logs := &logBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- serve.Run(ctx, platform, nil, lookup, environ(vars), io.Discard, logs) }()
		var runErr error
		exited := false
		started := waitUntil(startTimeout, func() bool {
			select {
			case runErr = <-done:
				exited = true
				return true
			default:
				return logs.waitFor(0, listeningLine...)
			}
		})
		switch {
		case !started:
			cancel()
			t.Fatalf("proxy did not start within %v; log:\n%s", startTimeout, logs)
		case exited && strings.Contains(fmt.Sprint(runErr), "address already in use"):
			cancel()
			continue // another process took the port
		case exited:
			cancel()
			t.Fatalf("serve.Run returned before listening: %v; log:\n%s", runErr, logs)
		}
		t.Cleanup(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve.Run returned %v after shutdown; want nil", err)
				}
			case <-time.After(exitTimeout):
				t.Errorf("serve.Run did not return within %v of shutdown", exitTimeout)
			}
		})
		return "http://127.0.0.1:" + strconv.Itoa(port), logs
	}
	t.Fatal("no free port after 5 attempts")
	return "", nil
}

// process is the server binary running as a child process.
type process struct {
	cmd    *exec.Cmd
	stdout *logBuffer
	stderr *logBuffer
	port   int
	done   chan struct{} // closed when the process has exited
}

// base returns the proxy's base URL.
func (p *process) base() string { return "http://127.0.0.1:" + strconv.Itoa(p.port) }

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the process to exit and returns its exit code.
func (p *process) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %v; stderr:\n%s", timeout, p.stderr)
		return -1
	}
}

// signal sends sig to the process.
func (p *process) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sending %v: %v", sig, err)
	}
}

// launch starts the binary with env as its whole environment (nothing leaks
// in from the test's own environment) and kills it when the test ends.
func launch(t *testing.T, env map[string]string, args ...string) *process {
	t.Helper()
	p := &process{stdout: &logBuffer{}, stderr: &logBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(serverBinary(t), args...)
	p.cmd.Env = environ(env)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting the server binary: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// runBinary runs the binary to completion and returns its exit code.
func runBinary(t *testing.T, env map[string]string, args ...string) *process {
	t.Helper()
	p := launch(t, env, args...)
	p.wait(t, exitTimeout)
	return p
}

// startBinary starts the binary as a server on a free loopback port and waits
// until it listens.
func startBinary(t *testing.T, env map[string]string) *process {
	t.Helper()
	for range 5 {
		port := freePort(t)
		p := launch(t, withListenAddr(env, port))
		p.port = port
		ok := waitUntil(startTimeout, func() bool { return p.exited() || p.stderr.waitFor(0, listeningLine...) })
		switch {
		case !ok:
			t.Fatalf("server did not start within %v; stderr:\n%s", startTimeout, p.stderr)
		case p.exited() && strings.Contains(p.stderr.String(), "address already in use"):
			continue
		case p.exited():
			t.Fatalf("server exited with %d before listening; stderr:\n%s", p.cmd.ProcessState.ExitCode(), p.stderr)
		}
		return p
	}
	t.Fatal("no free port after 5 attempts")
	return nil
}

// refusesConnections reports whether nothing accepts TCP connections on port.
func refusesConnections(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 5*time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// newClient returns an HTTP client that never uses a proxy from the test's
// environment and has a generous overall limit, so that a hang fails the test
// instead of stalling it.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}
