package serve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startRun runs the server platform in-process on 127.0.0.1 and returns its
// address, a stop function, and the channel Run's result arrives on.
func startRun(t *testing.T, p Platform, env map[string]string) (string, context.CancelFunc, <-chan error, *syncBuffer) {
	t.Helper()
	port := freePort(t)
	env["OXY_HOST"] = "127.0.0.1"
	env["OXY_PORT"] = strconv.Itoa(port)
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, p, nil, lookup, environ, io.Discard, logs) }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not listen: %v\n%s", err, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(cancel)
	return addr, cancel, done, logs
}

func TestNewServer_limits(t *testing.T) {
	srv := newServer(slog.New(slog.DiscardHandler), http.NotFoundHandler())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadHeaderTimeout > 30*time.Second {
		t.Errorf("ReadHeaderTimeout = %v; want a bound against slow headers", srv.ReadHeaderTimeout)
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 {
		t.Errorf("MaxHeaderBytes = %d; want a bound", srv.MaxHeaderBytes)
	}
	if srv.ReadTimeout != 0 || srv.WriteTimeout != 0 {
		t.Errorf("ReadTimeout %v WriteTimeout %v; want none (uploads and streams take minutes)", srv.ReadTimeout, srv.WriteTimeout)
	}
}

func TestRun_hugeHeadersRefused(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer up.Close()
	addr, _, _, _ := startRun(t, Platform{Name: "test"}, map[string]string{"OXY_TARGET": up.URL})
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/models", nil)
	req.Header.Set("X-Huge", strings.Repeat("a", 200<<10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d; want 431", res.StatusCode)
	}
	res, err = http.Get("http://" + addr + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("normal request status %d; want 200", res.StatusCode)
	}
}

func TestRun_gracefulShutdownLetsStreamsFinish(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "data: two\n\n")
	}))
	defer up.Close()
	addr, stop, done, _ := startRun(t, Platform{Name: "test"}, map[string]string{"OXY_TARGET": up.URL, "OXY_SHUTDOWN_GRACE": "30s"})
	res, err := http.Get("http://" + addr + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(res.Body)
	if line, _ := br.ReadString('\n'); line != "data: one\n" {
		t.Fatalf("first line %q", line)
	}
	stop() // SIGTERM
	// New connections are refused once shutdown began.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while a stream was in flight", err)
	default:
	}
	close(release)
	rest, err := io.ReadAll(br)
	res.Body.Close()
	if err != nil || !strings.Contains(string(rest), "data: two") {
		t.Errorf("stream ended with %q, %v; want it to finish", rest, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v; want nil (exit 0)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the last stream finished")
	}
}

func TestRun_graceExpiresStillExitsCleanly(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer up.Close()
	addr, stop, done, _ := startRun(t, Platform{Name: "test"}, map[string]string{"OXY_TARGET": up.URL, "OXY_SHUTDOWN_GRACE": "300ms"})
	res, err := http.Get("http://" + addr + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	bufio.NewReader(res.Body).ReadString('\n')
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v; want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after the grace period")
	}
}

func TestRun_flagsAndSettings(t *testing.T) {
	var out, errOut bytes.Buffer
	none := func(string) (string, bool) { return "", false }
	if err := Run(context.Background(), Platform{Name: "test"}, []string{"-version"}, none, nil, &out, &errOut); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-version: %v", err)
	}
	if !strings.HasPrefix(out.String(), "chatgpt_reverse_proxy ") || !strings.Contains(out.String(), "go1.") {
		t.Errorf("-version printed %q", out.String())
	}
	errOut.Reset()
	if err := Run(context.Background(), Platform{Name: "test"}, []string{"-h"}, none, nil, &out, &errOut); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"OXY_TARGET", "https://api.openai.com", "OXY_PORT", "9000", "OXY_HOP_HEADER_PREFIX"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("-h lacks %q:\n%s", want, errOut.String())
		}
	}
	bad := func(k string) (string, bool) {
		if k == "OXY_PORT" {
			return "0", true
		}
		return "", false
	}
	err := Run(context.Background(), Platform{Name: "test"}, nil, bad, []string{"OXY_PORT=0"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `OXY_PORT="0": must be a port number 1-65535`) {
		t.Errorf("bad port: %v", err)
	}
	var ue usageError
	if err := Run(context.Background(), Platform{Name: "test"}, []string{"extra"}, none, nil, &out, &errOut); !errors.As(err, &ue) {
		t.Errorf("stray argument: %v; want a usage error", err)
	}
}

// A platform's Check refuses settings before anything listens.
func TestRun_platformCheckRefusesBeforeListening(t *testing.T) {
	port := freePort(t)
	env := map[string]string{"OXY_HOST": "127.0.0.1", "OXY_PORT": strconv.Itoa(port)}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	refused := errors.New("OXY_TARGET: not on this platform")
	var seen bool
	p := Platform{Name: "test", Check: func(cfg core.Config) error {
		seen = cfg.Port == port
		return refused
	}}
	err := Run(context.Background(), p, nil, lookup, nil, io.Discard, io.Discard)
	if !errors.Is(err, refused) {
		t.Fatalf("Run = %v; want the Check error", err)
	}
	if !seen {
		t.Error("Check did not get the parsed settings")
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		c.Close()
		t.Error("something listens after Check refused the settings")
	}
}
