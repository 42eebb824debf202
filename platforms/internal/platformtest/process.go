package platformtest

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestVersion is the version Build stamps into binaries.
const TestVersion = "0.0.0-test"

// Process is a platform binary running as a server.
type Process struct {
	// URL is the server's base URL, http://127.0.0.1:port.
	URL string
	cmd *exec.Cmd
	log *syncBuffer
	// exited is closed when the process has exited; err is its Wait result.
	exited chan struct{}
	err    error
}

// Log returns what the process wrote to stderr so far.
func (p *Process) Log() string { return p.log.String() }

// Start runs bin with exactly env (no inherited variables, so a stray OXY_
// variable of the test runner cannot change the result) plus OXY_HOST=127.0.0.1,
// and, unless portVar is empty, portVar set to a free port. It waits until
// the server logs that it listens. The process gets SIGTERM at the end of the
// test, and the test fails unless it then exits cleanly.
func Start(t *testing.T, bin string, portVar string, env ...string) *Process {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		full := append([]string{"OXY_HOST=127.0.0.1"}, env...)
		if portVar != "" {
			full = append(full, portVar+"="+strconv.Itoa(port))
		}
		p, err := start(bin, full, port)
		if err == nil {
			t.Cleanup(func() { p.stop(t) })
			return p
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("starting %s: %v", filepath.Base(bin), lastErr)
	return nil
}

func start(bin string, env []string, port int) (*Process, error) {
	p := &Process{log: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = env
	p.cmd.Dir = filepath.Dir(bin)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.log.WriteLine(line)
			if strings.Contains(line, "msg=listening") {
				select {
				case listening <- line:
				default:
				}
			}
		}
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case line := <-listening:
		addr := field(line, "addr")
		if _, got, _ := net.SplitHostPort(addr); got != strconv.Itoa(port) {
			p.kill()
			return nil, fmt.Errorf("listening on %s; want port %d", addr, port)
		}
		p.URL = "http://" + addr
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("exited before listening (%v):\n%s", p.err, p.log.String())
	case <-time.After(60 * time.Second):
		p.kill()
		return nil, fmt.Errorf("not listening after 60s:\n%s", p.log.String())
	}
}

func (p *Process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// stop sends SIGTERM and requires a clean exit (graceful shutdown).
func (p *Process) stop(t *testing.T) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("process exited with %v after SIGTERM; want a clean exit\n%s", p.err, p.log.String())
		}
	case <-time.After(60 * time.Second):
		p.kill()
		t.Errorf("process still running 60s after SIGTERM\n%s", p.log.String())
	}
}

// field returns the value of key=value in a slog text line.
func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) WriteLine(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(line)
	s.b.WriteByte('\n')
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// RunWithBinary is for TestMain: it builds the main package in dir into a
// temporary directory, stores the path in *bin, runs the tests and removes
// the binary. With -short or without a go tool, *bin stays empty and
// NeedBinary skips the tests that need it.
func RunWithBinary(m *testing.M, dir string, bin *string) int {
	flag.Parse()
	goTool, err := exec.LookPath("go")
	if testing.Short() || err != nil {
		return m.Run()
	}
	tmp, err := os.MkdirTemp("", "platformtest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "main")
	cmd := exec.Command(goTool, "build", "-trimpath",
		"-ldflags", "-X github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core.Version="+TestVersion,
		"-o", out, dir)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", dir, err, b)
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
