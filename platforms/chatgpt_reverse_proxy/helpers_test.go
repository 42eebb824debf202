package main

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

// Generous limits: these tests share two busy cores with other test runs, so
// they wait for events (a log line, an exit) and never assert on speed.
const (
	startTimeout = testkit.StartTimeout
	exitTimeout  = testkit.ExitTimeout
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
		ldflags := fmt.Sprintf("-X %[1]s.Version=%[2]s -X %[1]s.Commit=%[3]s -X %[1]s.Date=%[4]s",
			corePkg, testVersion, testCommit, testDate)
		built.err = testkit.GoBuild(built.path, ".", "-ldflags", ldflags)
	})
	if built.err != nil {
		t.Fatalf("building the server binary: %v", built.err)
	}
	return built.path
}

// Markers of the startup line in either log format.
var listeningLine = platformtest.ListeningLine

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

// startInProcess runs the server platform in this process through start.Run,
// exactly as main does, with env as its whole environment. It returns the
// proxy's base URL ("http://127.0.0.1:PORT") and its log output, and stops the
// server when the test ends.
func startInProcess(t *testing.T, env map[string]string) (string, *testkit.LogBuffer) {
	t.Helper()
	run := platformtest.RunInProcess(t, platform, env)
	return run.URL, run.Logs
}

// process is the server binary running as a child process.
type process struct {
	*testkit.Process
	port int
}

// base returns the proxy's base URL.
func (p *process) base() string { return "http://127.0.0.1:" + strconv.Itoa(p.port) }

// launch starts the binary with env as its whole environment (nothing leaks
// in from the test's own environment) and kills it when the test ends.
func launch(t *testing.T, env map[string]string, args ...string) *process {
	t.Helper()
	return &process{Process: testkit.Launch(t, serverBinary(t), testkit.Environ(env), args...)}
}

// runBinary runs the binary to completion and returns its exit code.
func runBinary(t *testing.T, env map[string]string, args ...string) *process {
	t.Helper()
	p := launch(t, env, args...)
	p.Wait(t, exitTimeout)
	return p
}

// startBinary starts the binary as a server on a free loopback port and waits
// until it listens.
func startBinary(t *testing.T, env map[string]string) *process {
	t.Helper()
	env = maps.Clone(env)
	if env == nil {
		env = map[string]string{}
	}
	env["OXY_HOST"] = "127.0.0.1"
	p, port := testkit.StartServer(t, serverBinary(t), "OXY_PORT", testkit.Environ(env), func(p *testkit.Process, _ int) bool {
		return p.Stderr.Contains(listeningLine...)
	})
	return &process{Process: p, port: port}
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
