package main

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
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

			p.signal(t, sig)
			if !waitUntil(startTimeout, func() bool { return refusesConnections(p.port) }) {
				t.Fatalf("still accepting connections after %v; stderr:\n%s", sig, p.stderr)
			}
			if p.exited() {
				t.Fatalf("exited with %d while a stream was in flight; stderr:\n%s", p.cmd.ProcessState.ExitCode(), p.stderr)
			}

			release()
			rest, err := io.ReadAll(br)
			if err != nil {
				t.Errorf("reading the rest of the stream: %v; got %q", err, rest)
			}
			if want := "data: " + secondEvent + "\n\ndata: [DONE]\n\n"; string(rest) != want {
				t.Errorf("rest of the stream = %q; want %q", rest, want)
			}
			if code := p.wait(t, exitTimeout); code != 0 {
				t.Errorf("exit code %d; want 0; stderr:\n%s", code, p.stderr)
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

	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, exitTimeout); code != 0 {
		t.Errorf("exit code %d; want 0; stderr:\n%s", code, p.stderr)
	}
	rest, err := io.ReadAll(br)
	if err == nil {
		t.Errorf("stream ended cleanly after the grace period; want an error (got %q)", rest)
	}
	if strings.Contains(string(rest), "[DONE]") {
		t.Errorf("stream got [DONE] although the upstream never released it: %q", rest)
	}
}
