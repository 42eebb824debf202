// Package testkit is what the module's tests share: a goroutine-safe log
// buffer, free loopback ports with retry, settings maps as the lookup and
// environ the code under test takes, and building and starting a binary.
// It uses the standard library only, so core's tests import it too; it is
// imported by tests only.
package testkit

import (
	"bytes"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// LogBuffer is an io.Writer safe for concurrent writes (a logger used by
// server goroutines, a child's stderr) that keeps everything written to it.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Contains reports whether any of subs has been written.
func (b *LogBuffer) Contains(subs ...string) bool {
	s := b.String()
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}

// WaitFor reports whether any of subs is written within timeout.
func (b *LogBuffer) WaitFor(timeout time.Duration, subs ...string) bool {
	return WaitUntil(timeout, func() bool { return b.Contains(subs...) })
}

// WaitUntil polls cond until it holds or timeout passes, and reports whether
// it held. Tests wait for events this way and never assert on speed.
func WaitUntil(timeout time.Duration, cond func() bool) bool {
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

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process may take it before the caller listens: callers that hand
// it to a server use WithFreePort, which retries.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// portAttempts is how many free ports WithFreePort tries.
const portAttempts = 5

// WithFreePort calls try with a free port until it returns nil, retrying with
// another port while the error says the port was taken ("address already in
// use") and failing the test on any other error or after a few attempts.
func WithFreePort(t testing.TB, try func(port int) error) {
	t.Helper()
	var err error
	for range portAttempts {
		if err = try(FreePort(t)); err == nil {
			return
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatal(err)
}

// Lookup returns an os.LookupEnv over m, so tests never touch the process
// environment and can run in parallel.
func Lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Environ returns m in os.Environ's KEY=value form, sorted by key.
func Environ(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}

// ReadFile returns the file at the path joined from elem (a fixture under
// testdata/, a deployment template), failing the test if it cannot be read.
func ReadFile(t testing.TB, elem ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(elem...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
