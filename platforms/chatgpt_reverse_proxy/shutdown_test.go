package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

const (
	firstEvent  = `{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"first"}}]}`
	secondEvent = `{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"second"},"finish_reason":"stop"}]}`
)

// newHeldStream starts an upstream whose streamed answer sends one event and
// then holds the stream open until release is called (or the proxy gives up
// on it), then sends the rest.
func newHeldStream(t *testing.T) (srv *httptest.Server, release func()) {
	t.Helper()
	held := make(chan struct{})
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Like the API, read the whole request before answering.
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: "+firstEvent+"\n\n")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-held:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: "+secondEvent+"\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	var once sync.Once
	release = func() { once.Do(func() { close(held) }) }
	t.Cleanup(release) // runs before srv.Close
	return srv, release
}

// openStream posts a streamed chat request and returns the response after
// reading its first event.
func openStream(t *testing.T, base string) (*http.Response, *bufio.Reader) {
	t.Helper()
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	res, err := newClient(t).Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d; want 200", res.StatusCode)
	}
	br := bufio.NewReader(res.Body)
	if ev, err := readEvent(br); err != nil || ev != firstEvent {
		t.Fatalf("first event = %q, %v; want %q", ev, err, firstEvent)
	}
	return res, br
}

// readEvent returns the data of the next Server-Sent Event.
func readEvent(br *bufio.Reader) (string, error) {
	var data string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return data, err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "" && data != "":
			return data, nil
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// TestBinary_signalLetsStreamFinish checks that on SIGTERM or SIGINT the
// server stops accepting connections, lets an in-flight stream finish, and
// then exits 0 without waiting out the grace period.
func TestBinary_signalLetsStreamFinish(t *testing.T) {
	for _, sig := range []os.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			up, release := newHeldStream(t)
			// A grace period longer than the exit timeout below: a server
			// that waited it out instead of exiting when the stream ended
			// fails the test.
			p := startBinary(t, map[string]string{"OXY_TARGET": up.URL, "OXY_SHUTDOWN_GRACE": "90s"})
			_, br := openStream(t, p.base())

			p.Signal(t, sig)
			if !testkit.WaitUntil(startTimeout, func() bool { return refusesConnections(p.port) }) {
				t.Fatalf("still accepting connections after %v; stderr:\n%s", sig, p.Stderr)
			}
			if p.Exited() {
				t.Fatalf("exited with %d while a stream was in flight; stderr:\n%s", p.Cmd.ProcessState.ExitCode(), p.Stderr)
			}

			release()
			rest, err := io.ReadAll(br)
			if err != nil {
				t.Errorf("reading the rest of the stream: %v; got %q", err, rest)
			}
			if want := "data: " + secondEvent + "\n\ndata: [DONE]\n\n"; string(rest) != want {
				t.Errorf("rest of the stream = %q; want %q", rest, want)
			}
			if code := p.Wait(t, exitTimeout); code != 0 {
				t.Errorf("exit code %d; want 0; stderr:\n%s", code, p.Stderr)
			}
		})
	}
}

// TestBinary_sigtermGraceExpires checks that a stream still running when the
// grace period ends is cut (the client sees an incomplete response, not a
// clean end) and the server still exits 0.
func TestBinary_sigtermGraceExpires(t *testing.T) {
	up, _ := newHeldStream(t)
	p := startBinary(t, map[string]string{"OXY_TARGET": up.URL, "OXY_SHUTDOWN_GRACE": "1s"})
	_, br := openStream(t, p.base())

	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, exitTimeout); code != 0 {
		t.Errorf("exit code %d; want 0; stderr:\n%s", code, p.Stderr)
	}
	rest, err := io.ReadAll(br)
	if err == nil {
		t.Errorf("stream ended cleanly after the grace period; want an error (got %q)", rest)
	}
	if strings.Contains(string(rest), "[DONE]") {
		t.Errorf("stream got [DONE] although the upstream never released it: %q", rest)
	}
}

// newHeldWebSocket starts an upstream that accepts a WebSocket upgrade (the
// Realtime API's GET /v1/realtime), sends one line, holds the connection
// until release is called, then sends another line and closes. The proxy
// copies upgraded connections byte for byte, so no WebSocket framing is needed.
func newHeldWebSocket(t *testing.T) (srv *httptest.Server, release func()) {
	t.Helper()
	held := make(chan struct{})
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want a websocket upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("upstream hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nfirst\n")
		_ = brw.Flush()
		<-held
		_, _ = brw.WriteString("second\n")
		_ = brw.Flush()
	}))
	var once sync.Once
	release = func() { once.Do(func() { close(held) }) }
	t.Cleanup(srv.Close)
	t.Cleanup(release) // runs before srv.Close
	return srv, release
}

// TestBinary_sigtermLetsWebSocketFinish checks that an upgraded (WebSocket)
// connection in flight at SIGTERM may finish within the grace period, like an
// SSE stream: http.Server.Shutdown neither waits for nor closes hijacked
// connections, so a server that returns when Shutdown does cuts every
// Realtime session at once.
func TestBinary_sigtermLetsWebSocketFinish(t *testing.T) {
	up, release := newHeldWebSocket(t)
	p := startBinary(t, map[string]string{"OXY_TARGET": up.URL, "OXY_SHUTDOWN_GRACE": "90s"})
	conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(p.port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * exitTimeout)) // a hang fails instead of stalling
	_, err = io.WriteString(conn, "GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: proxy.test\r\n"+
		"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer "+testAPIKey+"\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the upgrade response: %v", err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d; want 101", res.StatusCode)
	}
	if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("first line = %q, %v; want \"first\\n\"", line, err)
	}

	p.Signal(t, syscall.SIGTERM)
	if !testkit.WaitUntil(startTimeout, func() bool { return refusesConnections(p.port) }) {
		t.Fatalf("still accepting connections after SIGTERM; stderr:\n%s", p.Stderr)
	}
	// A server that does not wait for upgraded connections exits right
	// after it stops accepting; a correct one cannot exit here at all.
	if testkit.WaitUntil(2*time.Second, p.Exited) {
		t.Fatalf("exited with %d while a WebSocket was in flight, within its 90s grace period; stderr:\n%s",
			p.Cmd.ProcessState.ExitCode(), p.Stderr)
	}
	release()
	if line, err := br.ReadString('\n'); err != nil || line != "second\n" {
		t.Errorf("second line = %q, %v; want \"second\\n\"", line, err)
	}
	// The upstream closed the connection: the proxy passes the end on, and
	// the client closes its side, as a WebSocket closing handshake ends.
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after the second line: %q, %v; want a clean end", rest, err)
	}
	conn.Close()
	if code := p.Wait(t, exitTimeout); code != 0 {
		t.Errorf("exit code %d; want 0; stderr:\n%s", code, p.Stderr)
	}
}

// TestBinary_graceCutIsLoggedAsTheProxysAbort: when the grace period ends,
// every request still running gets its access-log line before the process
// exits, logged as cut by the shutdown (never 499, the client's own leaving);
// a request still waiting for the upstream's headers gets a 503.
func TestBinary_graceCutIsLoggedAsTheProxysAbort(t *testing.T) {
	streams, _ := newHeldStream(t)
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	var held atomic.Int32
	// One upstream for both: /v1/chat/completions streams and holds,
	// /v1/models holds before any header.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/models" {
			held.Add(1)
			select {
			case <-hold:
			case <-r.Context().Done():
			}
			return
		}
		streams.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	p := startBinary(t, map[string]string{"OXY_TARGET": up.URL, "OXY_SHUTDOWN_GRACE": "1s", "OXY_LOG_FORMAT": "json"})
	const nStreams, nWaiting = 20, 5
	for range nStreams {
		openStream(t, p.base())
	}
	waiting := make(chan int, nWaiting)
	for range nWaiting {
		go func() {
			res, err := newClient(t).Get(p.base() + "/v1/models")
			if err != nil {
				waiting <- 0
				return
			}
			res.Body.Close()
			waiting <- res.StatusCode
		}()
	}
	count := func(path string) int { return strings.Count(p.Stderr.String(), `"path":"`+path+`"`) }
	if !testkit.WaitUntil(startTimeout, func() bool { return held.Load() == nWaiting }) {
		t.Fatalf("the upstream holds %d requests; want %d", held.Load(), nWaiting)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, exitTimeout); code != 0 {
		t.Errorf("exit code %d; want 0; stderr:\n%s", code, p.Stderr)
	}
	for range nWaiting {
		if status := <-waiting; status != http.StatusServiceUnavailable {
			t.Errorf("a request waiting for the upstream got %d; want 503", status)
		}
	}
	lines, _ := accessLines(p.Stderr.String())
	if len(lines) != nStreams+nWaiting || count("/v1/chat/completions") != nStreams || count("/v1/models") != nWaiting {
		t.Fatalf("%d access-log lines; want %d, one per request cut; stderr:\n%s", len(lines), nStreams+nWaiting, p.Stderr)
	}
	for _, l := range lines {
		if l["status"] == float64(499) || l["cut"] != "shutdown" {
			t.Errorf("line %v; want cut shutdown, never 499", l)
		}
	}
}

// TestBinary_secondSignalExitsAtOnce: a second SIGTERM or SIGINT during the
// grace period ends the process at once, without waiting for the streams.
func TestBinary_secondSignalExitsAtOnce(t *testing.T) {
	for _, sig := range []os.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			up, _ := newHeldStream(t)
			p := startBinary(t, map[string]string{"OXY_TARGET": up.URL, "OXY_SHUTDOWN_GRACE": "90s"})
			openStream(t, p.base())
			p.Signal(t, sig)
			if !p.Stderr.WaitFor(startTimeout, "shutting down") {
				t.Fatalf("no shutdown after %v; stderr:\n%s", sig, p.Stderr)
			}
			if p.Exited() {
				t.Fatalf("exited while a stream was in flight; stderr:\n%s", p.Stderr)
			}
			p.Signal(t, sig)
			select {
			case <-p.Done():
			case <-time.After(5 * time.Second):
				t.Fatalf("still running 5s after a second %v (grace 90s); stderr:\n%s", sig, p.Stderr)
			}
			if ws, ok := p.Cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != sig {
				t.Errorf("process state %v; want ended by %v", p.Cmd.ProcessState, sig)
			}
		})
	}
}
