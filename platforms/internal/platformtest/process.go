package platformtest

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// TestVersion is the version Build stamps into binaries.
const TestVersion = "0.0.0-test"

// Process is a platform binary running as a server.
type Process struct {
	*testkit.Process
	// URL is the server's base URL, http://127.0.0.1:port.
	URL string
}

// Log returns what the process wrote to stderr so far.
func (p *Process) Log() string { return p.Stderr.String() }

// ListeningLine marks the startup line of the HTTP and RPC runners in either
// log format.
var ListeningLine = []string{"msg=listening", `"msg":"listening"`}

// Start runs bin with exactly env (no inherited variables, so a stray OXY_
// variable of the test runner cannot change the result) plus OXY_HOST=127.0.0.1
// and portVar set to a free port. It waits until the server logs that it
// listens on that port. The process gets SIGTERM at the end of the test, and
// the test fails unless it then exits cleanly.
func Start(t *testing.T, bin string, portVar string, env ...string) *Process {
	t.Helper()
	full := append([]string{"OXY_HOST=127.0.0.1"}, env...)
	p, port := testkit.StartServer(t, bin, portVar, full, func(p *testkit.Process, port int) bool {
		return p.Stderr.Contains(ListeningLine...)
	})
	t.Cleanup(func() { p.Stop(t) })
	addr := field(p.Stderr.String(), "addr")
	if _, got, _ := net.SplitHostPort(addr); got != strconv.Itoa(port) {
		t.Fatalf("listening on %s; want port %d\n%s", addr, port, p.Stderr)
	}
	return &Process{Process: p, URL: "http://" + addr}
}

// field returns the value of key=value in the first slog text line that has it.
func field(log, key string) string {
	for _, f := range strings.Fields(log) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// RunWithBinary is for TestMain: it builds the main package in dir into a
// temporary directory, stores the path in *bin, runs the tests and removes
// the binary. With -short or without a go tool, *bin stays empty and
// NeedBinary skips the tests that need it.
func RunWithBinary(m *testing.M, dir string, bin *string) int {
	flag.Parse()
	if _, err := exec.LookPath("go"); testing.Short() || err != nil {
		return m.Run()
	}
	tmp, err := os.MkdirTemp("", "platformtest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "main")
	if err := testkit.GoBuild(out, dir, "-ldflags", "-X github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core.Version="+TestVersion); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*bin = out
	return m.Run()
}

// NeedBinary skips the test when RunWithBinary built no binary.
func NeedBinary(t *testing.T, bin string) {
	t.Helper()
	if bin == "" {
		t.Skip("platform binary not built (-short, or no go tool)")
	}
}

// InProcess is a platform run in this process through start.Run, exactly as
// its main does.
type InProcess struct {
	// URL is the server's base URL, http://127.0.0.1:port.
	URL string
	// Port is the port it listens on.
	Port int
	// Logs is everything it logged.
	Logs *testkit.LogBuffer
	// Stop ends Run's context, as SIGTERM does.
	Stop   context.CancelFunc
	exited chan struct{}
	err    error
}

// Exited is closed when start.Run has returned.
func (ip *InProcess) Exited() <-chan struct{} { return ip.exited }

// Err is what start.Run returned; valid once Exited is closed.
func (ip *InProcess) Err() error { return ip.err }

// RunInProcess runs p through start.Run with env (plus OXY_HOST=127.0.0.1
// and OXY_PORT set to a free port) as its whole environment, and waits until
// it logs that it listens. At the end of the test it is stopped, and Run must
// then return nil.
func RunInProcess(t *testing.T, p start.Platform, env map[string]string) *InProcess {
	t.Helper()
	var ip *InProcess
	testkit.WithFreePort(t, func(port int) error {
		vars := maps.Clone(env)
		if vars == nil {
			vars = map[string]string{}
		}
		vars["OXY_HOST"] = "127.0.0.1"
		vars["OXY_PORT"] = strconv.Itoa(port)
		ctx, cancel := context.WithCancel(context.Background())
		run := &InProcess{URL: "http://127.0.0.1:" + strconv.Itoa(port), Port: port, Logs: &testkit.LogBuffer{},
			Stop: cancel, exited: make(chan struct{})}
		go func() {
			run.err = start.Run(ctx, p, nil, testkit.Lookup(vars), testkit.Environ(vars), io.Discard, run.Logs)
			close(run.exited)
		}()
		listening := testkit.WaitUntil(testkit.StartTimeout, func() bool {
			select {
			case <-run.exited:
				return true
			default:
				return run.Logs.Contains(ListeningLine...)
			}
		})
		select {
		case <-run.exited:
			return fmt.Errorf("start.Run returned before listening: %v; log:\n%s", run.err, run.Logs)
		default:
		}
		if !listening {
			cancel()
			t.Fatalf("%s did not listen within %v; log:\n%s", p.Name, testkit.StartTimeout, run.Logs)
		}
		ip = run
		return nil
	})
	t.Cleanup(func() {
		ip.Stop()
		select {
		case <-ip.exited:
			if ip.err != nil {
				t.Errorf("start.Run returned %v after shutdown; want nil", ip.err)
			}
		case <-time.After(testkit.ExitTimeout):
			t.Errorf("start.Run did not return within %v of shutdown", testkit.ExitTimeout)
		}
	})
	return ip
}
