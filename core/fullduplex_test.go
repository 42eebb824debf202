package core

import (
	"bufio"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// lateEOFTransport holds back the transport's final end-of-body read of the
// request until the client has the first response event: the order that
// makes an HTTP/1 server drain and close the request body under it.
type lateEOFTransport struct {
	rt      http.RoundTripper
	release chan struct{}
}

type lateEOFBody struct {
	io.ReadCloser
	left    int64
	release chan struct{}
}

func (b *lateEOFBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		<-b.release
	}
	n, err := b.ReadCloser.Read(p[:min(int64(len(p)), max(b.left, 1))])
	b.left -= int64(n)
	return n, err
}

func (t lateEOFTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r.Body = &lateEOFBody{ReadCloser: r.Body, left: r.ContentLength, release: t.release}
	return t.rt.RoundTrip(r)
}

func TestProxy_streamSurvivesLateRequestBodyEOF(t *testing.T) {
	second := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(io.LimitReader(r.Body, r.ContentLength))
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		http.NewResponseController(w).Flush()
		<-second
		io.WriteString(w, "data: two\n\n")
	}))
	defer up.Close()
	c, err := FromEnv(testkit.Lookup(map[string]string{"OXY_TARGET": up.URL}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	tr := NewTransport(c)
	defer tr.CloseIdleConnections()
	px := httptest.NewServer(New(c, nil, lateEOFTransport{rt: tr, release: release}))
	defer px.Close()
	res, err := http.Post(px.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "data: one\n" {
		t.Fatalf("first line %q, %v; want data: one", line, err)
	}
	close(release) // the transport now does its final read of the request body
	close(second)
	rest, err := io.ReadAll(br)
	if err != nil || !strings.Contains(string(rest), "data: two") {
		t.Fatalf("rest of the stream %q, %v; want data: two and a clean end", rest, err)
	}
}

// TestProxy_unreadBodyKeepsTheConnection sends POSTs whose bodies the proxy
// never reads (the upstream cannot be reached, so the reverse proxy answers
// 502 without a round trip) one after another on one kept-alive connection.
// In full duplex, net/http used to read the unread body to its end only
// after the handler returned, which started its background read of the
// connection too late to be stopped: the server then panicked reading the
// next request ("invalid concurrent Body.Read call", golang/go#68560) and
// dropped the connection.
func TestProxy_unreadBodyKeepsTheConnection(t *testing.T) {
	c, err := FromEnv(testkit.Lookup(map[string]string{"OXY_TARGET": "http://" + closedPort(t)}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewUnstartedServer(New(c, nil, nil))
	serverLog := &testkit.LogBuffer{}
	px.Config.ErrorLog = log.New(serverLog, "", 0)
	px.Start()
	defer px.Close()
	client := px.Client()
	var conns atomic.Int64
	trace := &httptrace.ClientTrace{GotConn: func(c httptrace.GotConnInfo) {
		if !c.Reused {
			conns.Add(1)
		}
	}}
	for i := range 20 {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
			"POST", px.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini"}`))
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadGateway {
			t.Fatalf("request %d: %d; want 502", i+1, res.StatusCode)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 20 requests; want 1 (kept alive through the 502s)", n)
	}
	if s := serverLog.String(); s != "" {
		t.Errorf("server error log:\n%s\nwant nothing", s)
	}
}

// TestProxy_unreadBodyOfAStalledClientIsNotWaitedFor: a client that stops
// sending its body to an unreachable upstream gets its 502, and its request
// ends (access-log line written) within OXY_CLIENT_BODY_TIMEOUT, while the
// client keeps the connection open.
func TestProxy_unreadBodyOfAStalledClientIsNotWaitedFor(t *testing.T) {
	p := newTestProxyTo(t, nil, "http://"+closedPort(t), map[string]string{"OXY_CLIENT_BODY_TIMEOUT": "1s"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\":")
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d; want 502", res.StatusCode)
	}
	if !testkit.WaitUntil(5*time.Second, func() bool { return len(p.logLines()) == 1 }) {
		t.Fatal("no access-log line 5s after the 502 while the client holds its body back; want the request ended by OXY_CLIENT_BODY_TIMEOUT")
	}
}
