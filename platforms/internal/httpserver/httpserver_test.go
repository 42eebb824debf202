package httpserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"
)

// testPlatform is a platform served by this package's runner.
var testPlatform = start.Platform{Name: "test", NewRunner: Serverless}

// startRun runs the test platform in-process on 127.0.0.1 and returns its
// address, a stop function (SIGTERM), and the run.
func startRun(t *testing.T, env map[string]string) (string, func(), *platformtest.InProcess) {
	t.Helper()
	run := platformtest.RunInProcess(t, testPlatform, env)
	return strings.TrimPrefix(run.URL, "http://"), run.Stop, run
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

// TestRun_optionsAsteriskNeverHidesARequest: "OPTIONS *" with both
// Content-Length and chunked framing is answered once and the connection
// closed; net/http's own OPTIONS handler kept it open, and the request hidden
// in the body reached the upstream.
func TestRun_optionsAsteriskNeverHidesARequest(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.RequestURI)
		mu.Unlock()
	}))
	defer up.Close()
	addr, _, _ := startRun(t, map[string]string{"OXY_TARGET": up.URL})
	body := "0\r\n\r\nGET /hidden HTTP/1.1\r\nHost: p\r\n\r\n"
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "OPTIONS * HTTP/1.1\r\nHost: p\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s", len(body), body)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(conn)
	if out := string(b); !strings.HasPrefix(out, "HTTP/1.1 400 ") || strings.Count(out, "HTTP/1.1 ") != 1 {
		t.Errorf("got %q; want one 400, then the connection closed", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 0 {
		t.Errorf("the upstream was sent %q; want nothing", seen)
	}
}

func TestRun_hugeHeadersRefused(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer up.Close()
	addr, _, _ := startRun(t, map[string]string{"OXY_TARGET": up.URL})
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
	addr, stop, run := startRun(t, map[string]string{"OXY_TARGET": up.URL, "OXY_SHUTDOWN_GRACE": "30s"})
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
	case <-run.Exited():
		t.Fatalf("Run returned %v while a stream was in flight", run.Err())
	default:
	}
	close(release)
	rest, err := io.ReadAll(br)
	res.Body.Close()
	if err != nil || !strings.Contains(string(rest), "data: two") {
		t.Errorf("stream ended with %q, %v; want it to finish", rest, err)
	}
	select {
	case <-run.Exited():
		if err := run.Err(); err != nil {
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
	addr, stop, run := startRun(t, map[string]string{"OXY_TARGET": up.URL, "OXY_SHUTDOWN_GRACE": "300ms"})
	res, err := http.Get("http://" + addr + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	bufio.NewReader(res.Body).ReadString('\n')
	stop()
	select {
	case <-run.Exited():
		if err := run.Err(); err != nil {
			t.Errorf("Run = %v; want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after the grace period")
	}
}

// Past the grace period every connection is closed, upgraded (hijacked)
// ones too: http.Server.Close leaves those open, so a WebSocket would outlive
// the server that logged it closed.
func TestRun_graceExpiresClosesUpgradedConnections(t *testing.T) {
	hijacked := make(chan struct{})
	holder := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		_ = brw.Flush()
		close(hijacked)
		_, _ = io.Copy(io.Discard, conn) // like a WebSocket proxy: until either side closes
	})
	p := start.Platform{Name: "test", NewRunner: Serverless,
		Wrap: func(core.Config, *slog.Logger, http.Handler) http.Handler { return holder }}
	run := platformtest.RunInProcess(t, p, map[string]string{"OXY_TARGET": "http://127.0.0.1:1", "OXY_SHUTDOWN_GRACE": "300ms"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(run.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "GET /v1/realtime HTTP/1.1\r\nHost: proxy.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade response %v, %v; want 101", res, err)
	}
	<-hijacked
	run.Stop()
	select {
	case <-run.Exited():
	case <-time.After(testkit.ExitTimeout):
		t.Fatal("Run did not return after the grace period")
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := br.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("upgraded connection after the grace period: read %d bytes, %v; want it closed (EOF)", n, err)
	}
	if !run.Logs.Contains("grace period over, closing remaining connections") {
		t.Errorf("log lacks the grace warning:\n%s", run.Logs)
	}
}

// TestRun_maxConnectionsQueuesTheRest: with OXY_MAX_CONNECTIONS=2, a third
// client connection is not served until one of the two closes.
func TestRun_maxConnectionsQueuesTheRest(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer up.Close()
	addr, _, _ := startRun(t, map[string]string{"OXY_TARGET": up.URL, "OXY_MAX_CONNECTIONS": "2"})
	request := func(conn net.Conn) (*http.Response, error) {
		if _, err := io.WriteString(conn, "GET /v1/models HTTP/1.1\r\nHost: p\r\n\r\n"); err != nil {
			return nil, err
		}
		conn.SetReadDeadline(time.Now().Add(time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			res.Body.Close()
		}
		return res, err
	}
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	for _, c := range conns[:2] {
		if res, err := request(c); err != nil || res.StatusCode != 200 {
			t.Fatalf("a connection within the cap: %v", err)
		}
	}
	if _, err := request(conns[2]); err == nil {
		t.Fatal("a third connection was served with OXY_MAX_CONNECTIONS=2")
	}
	conns[0].Close()
	conns[2].SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conns[2]), nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("the queued connection after one closed: %v", err)
	}
	res.Body.Close()
}

// TestRun_slowHeadersClosedAt10s keeps holding the slowloris limit: a client
// that sends part of its request headers and stops is cut off at 10 s.
func TestRun_slowHeadersClosedAt10s(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer up.Close()
	addr, _, _ := startRun(t, map[string]string{"OXY_TARGET": up.URL})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nX-Slow: ")
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = io.ReadAll(conn)
	if d := time.Since(start); err != nil || d < 9*time.Second || d > 15*time.Second {
		t.Errorf("connection ended after %v (%v); want it closed by the proxy at about 10s", d, err)
	}
}

func TestUnguarded(t *testing.T) {
	key := []core.ProxyKey{{}}
	cidrs := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		addr string
		cfg  core.Config
		want bool
	}{
		{"0.0.0.0:9000", core.Config{}, true},
		{"[::]:9000", core.Config{}, true},
		{"192.0.2.7:9000", core.Config{}, true},
		{"127.0.0.1:9000", core.Config{}, false},
		{"[::1]:9000", core.Config{}, false},
		{"0.0.0.0:9000", core.Config{AuthKeys: key}, false},
		{"0.0.0.0:9000", core.Config{AllowCIDRs: cidrs}, false},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := unguarded(tc.cfg, addr); got != tc.want {
			t.Errorf("unguarded(%s, keys %d, cidrs %d) = %v; want %v", tc.addr, len(tc.cfg.AuthKeys), len(tc.cfg.AllowCIDRs), got, tc.want)
		}
	}
}
