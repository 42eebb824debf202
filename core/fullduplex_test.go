package core

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
