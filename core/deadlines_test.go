package core

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// TestIdleLimits_stalledBodyIs408: a client that sends its headers and then
// stalls mid-body is dropped after OXY_CLIENT_BODY_TIMEOUT with a 408 (as
// nginx's client_body_timeout does), and the upstream request ends with it.
func TestIdleLimits_stalledBodyIs408(t *testing.T) {
	t.Parallel()
	upstreamDone := make(chan struct{})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(upstreamDone)
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	})
	p := newTestProxy(t, up, "", map[string]string{"OXY_CLIENT_BODY_TIMEOUT": "1s"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nContent-Length: 100\r\n\r\n{\"model\":")
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	if res.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status %d; want 408", res.StatusCode)
	}
	if code := apiErrorCode(t, res); code != "request_body_timeout" {
		t.Errorf("code %q; want request_body_timeout", code)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
		t.Errorf("answered after %v; want about the 1s limit", d)
	}
	// And the connection is closed, not held open while net/http waits for
	// the rest of the body.
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after the 408: read %d bytes, %v; want the connection closed (EOF)", n, err)
	}
	select {
	case <-upstreamDone:
	case <-time.After(5 * time.Second):
		t.Error("the upstream request is still open")
	}
	waitFor(t, func() bool { return len(p.logLines()) == 1 })
	if l := p.logLines()[0]; !strings.Contains(l, `"status":408`) || !strings.Contains(l, `"level":"INFO"`) ||
		strings.Contains(l, conn.LocalAddr().String()) {
		t.Errorf("log line %s; want status 408 at INFO, without the client's address", l)
	}
}

// TestIdleLimits_stalledBodyClosedAfterOneLimit: the connection of a
// client that stalls mid-body closes once the limit has passed, not after a
// second one (the full-duplex finish re-armed the read deadline after the
// 408 and waited for the rest of the body again).
func TestIdleLimits_stalledBodyClosedAfterOneLimit(t *testing.T) {
	t.Parallel()
	p := newTestProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}), "", map[string]string{"OXY_CLIENT_BODY_TIMEOUT": "3s"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nContent-Length: 100\r\n\r\n{\"model\":")
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	out, _ := io.ReadAll(conn)
	if d := time.Since(start); !strings.HasPrefix(string(out), "HTTP/1.1 408 ") || d > 4500*time.Millisecond {
		t.Errorf("closed after %v with %q; want a 408 and the connection closed at about the 3s limit", d, firstLine(string(out)))
	}
}

// TestIdleLimits_slowButSteadyBodyPasses: the limit is on each wait, not on
// the whole body: a body trickling in for longer than the limit, never
// pausing that long, goes through.
func TestIdleLimits_slowButSteadyBodyPasses(t *testing.T) {
	t.Parallel()
	got := make(chan seen, 1)
	p := newTestProxy(t, recordingUpstream(got, 200, nil, nil), "", map[string]string{"OXY_CLIENT_BODY_TIMEOUT": "1s"})
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 5; i++ {
			pw.Write([]byte("x"))
			time.Sleep(400 * time.Millisecond)
		}
		pw.Close()
	}()
	res, err := http.Post(p.URL+"/v1/files", "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("status %d; want 200", res.StatusCode)
	}
	if s := <-got; string(s.Body) != "xxxxx" {
		t.Errorf("upstream got body %q; want xxxxx", s.Body)
	}
}

// TestIdleLimits_silentUpstreamNeverCut: neither limit ever cuts a request
// whose upstream is merely silent, before its headers (a long non-streaming
// answer) or between two events (a reasoning model thinking).
func TestIdleLimits_silentUpstreamNeverCut(t *testing.T) {
	t.Parallel()
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/v1/slow" {
			time.Sleep(2500 * time.Millisecond)
			w.Write([]byte(`{"done":true}`))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(2500 * time.Millisecond)
		fmt.Fprint(w, "data: second\n\n")
	})
	p := newTestProxy(t, up, "", map[string]string{"OXY_CLIENT_BODY_TIMEOUT": "1s", "OXY_SEND_TIMEOUT": "1s"})
	for _, path := range []string{"/v1/slow", "/v1/stream"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			res, err := http.Post(p.URL+path, "application/json", strings.NewReader(`{"stream":true}`))
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("status %d, read %v; want the whole answer", res.StatusCode, err)
			}
			if path == "/v1/stream" && string(b) != "data: first\n\ndata: second\n\n" {
				t.Errorf("got %q; want both events", b)
			}
		})
	}
}

// TestIdleLimits_clientNotReadingIsCut: a client that stops reading a large
// answer is dropped after OXY_SEND_TIMEOUT (nginx's send_timeout), which
// ends the upstream request too; the line says why.
func TestIdleLimits_clientNotReadingIsCut(t *testing.T) {
	t.Parallel()
	upstreamDone := make(chan struct{})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(upstreamDone)
		chunk := make([]byte, 64<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	p := newTestProxy(t, up, "", map[string]string{"OXY_SEND_TIMEOUT": "1s"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	io.WriteString(conn, "GET /v1/files/big/content HTTP/1.1\r\nHost: p\r\n\r\n")
	// Read nothing more: the proxy's writes block once the buffers fill.
	select {
	case <-upstreamDone:
	case <-time.After(15 * time.Second):
		t.Fatal("the upstream is still sending to a client that stopped reading")
	}
	waitFor(t, func() bool { return len(p.logLines()) == 1 })
	if l := p.logLines()[0]; !strings.Contains(l, `"cut":"send_timeout"`) || strings.Contains(l, `"status":499`) {
		t.Errorf("log line %s; want cut send_timeout, not 499", l)
	}
}

// TestIdleLimits_offWithZero: 0 turns a limit off.
func TestIdleLimits_offWithZero(t *testing.T) {
	c, err := FromEnv(testkit.Lookup(map[string]string{"OXY_CLIENT_BODY_TIMEOUT": "0", "OXY_SEND_TIMEOUT": "0"}), Options{})
	if err != nil || c.ClientBodyTimeout != 0 || c.SendTimeout != 0 {
		t.Fatalf("got %v, %v, %v; want both off", c.ClientBodyTimeout, c.SendTimeout, err)
	}
	c, _ = FromEnv(testkit.Lookup(nil), Options{})
	if c.ClientBodyTimeout != 60*time.Second || c.SendTimeout != 60*time.Second {
		t.Errorf("defaults %v, %v; want 60s each, as nginx", c.ClientBodyTimeout, c.SendTimeout)
	}
}

// TestProxy_shutdownCutIsTheProxysOwnAbort: requests a server cuts when its
// grace period ends (contexts ended with ErrShutdown) are logged as the
// proxy's abort, never 499; one still waiting for the upstream gets a 503.
func TestProxy_shutdownCutIsTheProxysOwnAbort(t *testing.T) {
	t.Parallel()
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: first\n\n")
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
	})
	upstream := httptest.NewServer(up)
	defer upstream.Close()
	cfg, err := FromEnv(testkit.Lookup(map[string]string{"OXY_TARGET": upstream.URL, "OXY_LOG_FORMAT": "json"}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.LogBuffer{}
	base, cut := context.WithCancelCause(context.Background())
	srv := httptest.NewUnstartedServer(New(cfg, NewLogger(cfg, logs), nil))
	srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	srv.Start()
	defer srv.Close()

	stream, err := http.Get(srv.URL + "/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	waiting := make(chan *http.Response, 1)
	go func() {
		res, err := http.Get(srv.URL + "/v1/models")
		if err != nil {
			t.Error(err)
		}
		waiting <- res
	}()
	time.Sleep(200 * time.Millisecond)
	cut(ErrShutdown)
	res := <-waiting
	if res != nil {
		if res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("waiting request got %d; want 503", res.StatusCode)
		}
		if code := apiErrorCode(t, res); code != "proxy_shutting_down" {
			t.Errorf("code %q; want proxy_shutting_down", code)
		}
	}
	if _, err := io.ReadAll(stream.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("stream ended with %v; want it cut, never a clean end", err)
	}
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			if strings.Contains(l, `"msg":"request"`) {
				out = append(out, l)
			}
		}
		return out
	}
	waitFor(t, func() bool { return len(lines()) == 2 })
	for _, l := range lines() {
		if strings.Contains(l, `"status":499`) || !strings.Contains(l, `"cut":"shutdown"`) {
			t.Errorf("log line %s; want cut shutdown, not 499", l)
		}
	}
}

// deadlineWriter is a ResponseWriter that records the write deadlines set
// on it through http.ResponseController.
type deadlineWriter struct {
	*httptest.ResponseRecorder
	sets []time.Time
}

func (w *deadlineWriter) SetWriteDeadline(t time.Time) error {
	w.sets = append(w.sets, t)
	return nil
}

func (w *deadlineWriter) FlushError() error { w.Flush(); return nil }

// TestIdleLimits_streamSetsTheSendDeadlineSeldom: a stream's writes and
// flushes do not set the connection's deadline each time (a runtime timer
// update per event), yet every write starts with at least OXY_SEND_TIMEOUT
// ahead of it, and at most an eighth more.
func TestIdleLimits_streamSetsTheSendDeadlineSeldom(t *testing.T) {
	const send = 80 * time.Millisecond
	w := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
	rc := http.NewResponseController(w)
	rec := startRecord(w, newIdleLimits(rc, Config{SendTimeout: send}))
	w.sets = nil // newIdleLimits clears the previous request's deadline
	writes := 0
	for start := time.Now(); time.Since(start) < 400*time.Millisecond; writes++ {
		now := time.Now()
		if _, err := rec.Write([]byte("data: {}\n\n")); err != nil {
			t.Fatal(err)
		}
		if err := http.NewResponseController(rec).Flush(); err != nil {
			t.Fatal(err)
		}
		last := w.sets[len(w.sets)-1]
		if ahead := last.Sub(now); ahead < send || ahead > send+send/8+20*time.Millisecond {
			t.Fatalf("write %d: deadline %v ahead; want between %v and %v", writes, ahead, send, send+send/8)
		}
		time.Sleep(500 * time.Microsecond)
	}
	// One set per eighth of the limit (10ms): about 40 in 400ms, against
	// two per write before.
	if len(w.sets) > 60 || len(w.sets) >= writes {
		t.Errorf("%d deadlines set for %d writes and flushes; want about one per 10ms", len(w.sets), writes)
	}
}
