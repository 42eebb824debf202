package core

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// sseUpstream writes one event, then blocks until release is closed, then
// writes a second event. The test reads the first event while the upstream is
// still blocked: a proxy that coalesced or buffered would deliver nothing.
func sseUpstream(contentType string, release <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(200)
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n")
	}
}

func TestProxy_streamsEventByEvent(t *testing.T) {
	for _, tc := range []struct{ name, contentType string }{
		{"chat completions SSE", "text/event-stream; charset=utf-8"},
		{"responses API SSE", "text/event-stream"},
		{"unknown length, no content type", ""},
		{"unknown length JSON lines", "application/x-ndjson"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			p := newTestProxy(t, sseUpstream(tc.contentType, release), "", nil)
			defer close(release)
			res, err := http.Post(p.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			br := bufio.NewReader(res.Body)
			first := make(chan string, 1)
			go func() {
				line, _ := br.ReadString('\n')
				first <- line
			}()
			select {
			case line := <-first:
				if !strings.Contains(line, "Hel") {
					t.Fatalf("first line %q", line)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("first event not delivered while the upstream was blocked before its second")
			}
		})
	}
}

func TestProxy_manyConcurrentStreamsAllComplete(t *testing.T) {
	const streams, concurrency, events = 3000, 1000, 5
	// The first `concurrency` streams are held open after their first event
	// until all of them are open at once; later ones run straight through.
	var open atomic.Int64
	allOpen := make(chan struct{})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"i\":-1}\n\n")
		w.(http.Flusher).Flush()
		if open.Add(1) == concurrency {
			close(allOpen)
		}
		select {
		case <-allOpen:
		case <-time.After(60 * time.Second):
			http.Error(w, "streams were never all open at once", 500)
			return
		}
		for i := 0; i < events; i++ {
			fmt.Fprintf(w, "data: {\"i\":%d}\n\n", i)
			w.(http.Flusher).Flush()
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	})
	p := newTestProxy(t, up, "", nil)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}}
	var failed atomic.Int64
	var firstErr atomic.Value
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i := 0; i < streams; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res, err := client.Post(p.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
			if err == nil {
				var b []byte
				b, err = io.ReadAll(res.Body)
				res.Body.Close()
				if err == nil && (res.StatusCode != 200 || !strings.HasSuffix(string(b), "data: [DONE]\n\n") ||
					strings.Count(string(b), "data: ") != events+2) {
					err = fmt.Errorf("status %d, body %q", res.StatusCode, b)
				}
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d streams failed; first: %v", n, streams, firstErr.Load())
	}
}

func TestProxy_clientGoneCancelsUpstream(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			started := make(chan struct{})
			ended := make(chan struct{})
			up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// Read the prompt first, as a real API does: net/http notices a
				// closed connection only once the request body is consumed.
				io.Copy(io.Discard, r.Body)
				if stream {
					w.Header().Set("Content-Type", "text/event-stream")
					fmt.Fprint(w, "data: first\n\n")
					w.(http.Flusher).Flush()
				}
				close(started)
				<-r.Context().Done() // a generation that would go on for minutes
				close(ended)
			})
			p := newTestProxy(t, up, "", nil)
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "POST", p.URL+"/v1/chat/completions", strings.NewReader("{}"))
			done := make(chan struct{})
			go func() {
				defer close(done)
				res, err := http.DefaultClient.Do(req)
				if err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			}()
			<-started
			if stream {
				time.Sleep(50 * time.Millisecond) // let the first event reach the client
			}
			cancel()
			select {
			case <-ended:
			case <-time.After(time.Second):
				t.Fatal("upstream request still running a second after the client went away")
			}
			<-done
			waitFor(t, func() bool { return len(p.logLines()) == 1 })
			if line := p.logLines()[0]; !strings.Contains(line, `"status":499`) {
				t.Errorf("log line %s; want status 499", line)
			}
		})
	}
}

// waitFor fails the test unless cond holds within 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	if !testkit.WaitUntil(10*time.Second, cond) {
		t.Fatal("condition not met within 10s")
	}
}

func TestProxy_upstreamDyingMidStreamAbortsClientResponse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header func(http.Header)
	}{
		{"sse", func(h http.Header) { h.Set("Content-Type", "text/event-stream") }},
		{"content-length", func(h http.Header) { h.Set("Content-Length", "1000") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tc.header(w.Header())
				fmt.Fprint(w, "data: partial\n\n")
				w.(http.Flusher).Flush()
				conn, _, _ := http.NewResponseController(w).Hijack()
				conn.Close() // the upstream dies mid-body
			})
			p := newTestProxy(t, up, "", nil)
			res, err := http.Post(p.URL+"/v1/chat/completions", "application/json", strings.NewReader("{}"))
			if err == nil {
				// Headers already sent (SSE flushes them at once): the body
				// must end in an error, not a clean end.
				_, err = io.ReadAll(res.Body)
				res.Body.Close()
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("client read ended with %v; want an aborted response (unexpected EOF), not a clean end", err)
				}
			} else if !errors.Is(err, io.EOF) {
				// Headers not yet sent: the connection is cut without a response.
				t.Errorf("client got %v; want the connection cut", err)
			}
			waitFor(t, func() bool { return len(p.logLines()) == 1 })
			if line := p.logLines()[0]; !strings.Contains(line, `"aborted":true`) {
				t.Errorf("log line %s; want aborted:true", line)
			}
		})
	}
}

// TestProxy_websocketUpgrade proxies a WebSocket handshake (as the Realtime
// API uses) and then bytes both ways over the upgraded connection.
func TestProxy_websocketUpgrade(t *testing.T) {
	gotHeader := make(chan http.Header, 1)
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeader <- r.Header.Clone()
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: realtime\r\n\r\n")
		brw.Flush()
		// Echo each line with a prefix: proves both directions.
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprint(brw, "upstream:"+line)
			brw.Flush()
		}
	})
	p := newTestProxy(t, up, "", nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: proxy\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: realtime\r\n"+
		"Authorization: Bearer sk-test\r\nOpenAI-Beta: realtime=v1\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 101 || res.Header.Get("Sec-Websocket-Protocol") != "realtime" {
		t.Fatalf("handshake answered %d %v", res.StatusCode, res.Header)
	}
	h := <-gotHeader
	if h.Get("Authorization") != "Bearer sk-test" || h.Get("Sec-Websocket-Key") == "" || h.Get("Openai-Beta") != "realtime=v1" {
		t.Errorf("upstream handshake headers %v", h)
	}
	for _, msg := range []string{"hello\n", "second\n"} {
		fmt.Fprint(conn, msg)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil || line != "upstream:"+msg {
			t.Fatalf("read %q, %v; want %q", line, err, "upstream:"+msg)
		}
	}
	conn.Close()
	waitFor(t, func() bool { return len(p.logLines()) == 1 })
	line := p.logLines()[0]
	if !strings.Contains(line, `"status":101`) {
		t.Errorf("log line %s; want status 101", line)
	}
	// Traffic after the upgrade is counted: "hello\nsecond\n" in, the two
	// "upstream:..." lines out.
	var fields struct {
		BytesIn  int64 `json:"bytes_in"`
		BytesOut int64 `json:"bytes_out"`
	}
	if err := json.Unmarshal([]byte(line), &fields); err != nil || fields.BytesIn != 13 || fields.BytesOut != 31 {
		t.Errorf("log line %s (%v); want bytes_in 13 and bytes_out 31", line, err)
	}
}
