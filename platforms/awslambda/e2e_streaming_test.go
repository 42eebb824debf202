//go:build unix

package main

// Response streaming end to end: the emulator buffers every response, so a
// small fake Runtime API hands the real bootstrap a function URL event and
// relays the streamed body to the test as it arrives.

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

// fakeRuntime is a minimal Lambda Runtime API
// (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) that hands
// out one function URL event and relays the streamed response body to the
// test as it arrives, since the emulator buffers it.
type fakeRuntime struct {
	event     []byte
	deadline  time.Time
	mu        sync.Mutex
	handedOut bool
	body      *io.PipeWriter
	// errType is the Lambda-Runtime-Function-Error-Type trailer, if any.
	errType chan string
	done    chan struct{}
	// proc is the bootstrap, whose stderr holds the function's log.
	proc *testkit.Process
}

func (f *fakeRuntime) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const prefix = "/2018-06-01/runtime/invocation/"
	switch {
	case r.Method == "GET" && r.URL.Path == prefix+"next":
		f.mu.Lock()
		first := !f.handedOut
		f.handedOut = true
		f.mu.Unlock()
		if !first {
			select { // no second invocation
			case <-r.Context().Done():
			case <-f.done:
			}
			return
		}
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", "inv-1")
		w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(f.deadline.UnixMilli(), 10))
		w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:proxy")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(f.event)
	case r.Method == "POST" && r.URL.Path == prefix+"inv-1/response":
		_, err := io.Copy(f.body, r.Body) // each chunk as it arrives
		f.errType <- r.Trailer.Get("Lambda-Runtime-Function-Error-Type")
		_ = f.body.CloseWithError(err)
		w.WriteHeader(http.StatusAccepted)
	default:
		body, _ := io.ReadAll(r.Body)
		_ = f.body.CloseWithError(fmt.Errorf("unexpected %s %s: %s", r.Method, r.URL.Path, body))
		w.WriteHeader(http.StatusAccepted)
	}
}

// startStreaming runs the bootstrap in response_stream mode against a fake
// Runtime API serving one event, with env (OXY_TARGET and the rest), and
// returns the relayed response stream.
func startStreaming(t *testing.T, event []byte, env ...string) (*bufio.Reader, *fakeRuntime) {
	t.Helper()
	bootstrap := tool(t, buildBootstrap)
	pr, pw := io.Pipe()
	f := &fakeRuntime{event: event, deadline: time.Now().Add(5 * time.Minute), body: pw,
		errType: make(chan string, 1), done: make(chan struct{})}
	api := httptest.NewServer(f)
	t.Cleanup(api.Close)
	t.Cleanup(func() { close(f.done); _ = pr.Close() })
	f.proc = launch(t, append([]string{"AWS_LAMBDA_RUNTIME_API=" + strings.TrimPrefix(api.URL, "http://"),
		"OXY_LAMBDA_INVOKE_MODE=response_stream"}, env...), bootstrap)
	return bufio.NewReader(pr), f
}

// Each SSE event must reach the Runtime API while the upstream is still
// holding back the next one: the stream is incremental, not one burst.
func TestE2E_streamingIncremental(t *testing.T) {
	t.Parallel()
	const events = 3
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range events {
			if i > 0 {
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			fmt.Fprintf(w, "data: {\"n\":%d}\n\n", i)
			http.NewResponseController(w).Flush()
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(up.Close)
	r, f := startStreaming(t, fixture(t, "chat-completions.json"), "OXY_TARGET="+up.URL)
	p := platformtest.ReadLambdaPrelude(t, r)
	status, headers := p.StatusCode, p.Headers
	if status != 200 || headers["Content-Type"] != "text/event-stream" {
		t.Errorf("prelude %d %v; want 200 text/event-stream", status, headers)
	}
	for i := range events {
		line, err := r.ReadString('\n')
		if want := fmt.Sprintf("data: {\"n\":%d}\n", i); err != nil || line != want {
			t.Fatalf("event %d = %q, %v; want %q before the upstream sends the next", i, line, err, want)
		}
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		if i < events-1 {
			release <- struct{}{} // only now may the upstream send the next event
		}
	}
	rest, err := io.ReadAll(r)
	if err != nil || string(rest) != "data: [DONE]\n\n" {
		t.Errorf("rest = %q, %v", rest, err)
	}
	if e := <-f.errType; e != "" {
		t.Errorf("function error %q; want none", e)
	}
}

// An upstream that dies mid-stream must show as a failed invocation (the
// runtime's error trailer), not a stream that ended cleanly; the function
// survives (no panic reaches the runtime).
func TestE2E_streamingUpstreamAbort(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		http.NewResponseController(w).Flush()
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
		}
	}))
	t.Cleanup(up.Close)
	r, f := startStreaming(t, fixture(t, "chat-completions.json"), "OXY_TARGET="+up.URL)
	platformtest.ReadLambdaPrelude(t, r)
	body, _ := io.ReadAll(r)
	if string(body) != "data: one\n\n" {
		t.Errorf("body = %q", body)
	}
	if e := <-f.errType; e == "" {
		t.Error("no Lambda-Runtime-Function-Error-Type trailer; want the aborted stream reported")
	}
}

// Lambda sends SIGTERM when it shuts an execution environment down. The
// bootstrap, waiting for its next invocation, exits cleanly (status 0), as
// every build does on SIGTERM.
func TestE2E_sigtermExitsCleanly(t *testing.T) {
	t.Parallel()
	bootstrap := tool(t, buildBootstrap)
	polled := make(chan struct{}, 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case polled <- struct{}{}:
		default:
		}
		<-r.Context().Done() // no invocation ever comes
	}))
	t.Cleanup(api.Close)
	p := launch(t, []string{"AWS_LAMBDA_RUNTIME_API=" + strings.TrimPrefix(api.URL, "http://"),
		"OXY_TARGET=http://127.0.0.1:1"}, bootstrap)
	select {
	case <-polled:
	case <-time.After(testkit.StartTimeout):
		t.Fatalf("the bootstrap never asked the Runtime API for an invocation; stderr:\n%s", p.Stderr)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, testkit.ExitTimeout); code != 0 {
		t.Errorf("exit status %d after SIGTERM; want 0\n%s", code, p.Stderr)
	}
}
