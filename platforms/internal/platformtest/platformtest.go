// Package platformtest holds what the platform tests share: a recording mock
// upstream with a blocking SSE stream, the header sets the platforms inject,
// and helpers that build a platform's real binary and run it as a process on
// 127.0.0.1. It is imported by tests only.
package platformtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// SCFHeaders are the headers Tencent SCF and its API gateway add to requests
// (the real capture of the original project plus function-URL and role
// credential headers reported by public code), with made-up values.
func SCFHeaders() http.Header {
	return http.Header{
		"X-Scf-Request-Id":    {"4b0d1c2e-0000-4000-8000-000000000001"},
		"X-Scf-Memory":        {"128"},
		"X-Scf-Timeout":       {"900000"},
		"X-Scf-Version":       {"$LATEST"},
		"X-Scf-Name":          {"chatgpt-proxy"},
		"X-Scf-Namespace":     {"default"},
		"X-Scf-Region":        {"ap-hongkong"},
		"X-Scf-Appid":         {"1250000000"},
		"X-Scf-Uin":           {"100000000001"},
		"X-Scf-Remote-Addr":   {"203.0.113.7"},
		"X-Scf-Secret-Id":     {"AKIDfakeSecretIdForTests"},
		"X-Scf-Secret-Key":    {"fakeSecretKeyForTests"},
		"X-Scf-Session-Token": {"fakeSessionTokenForTests"},
		"X-Api-Requestid":     {"0b3f6a0b0e8e4f9a8c8d"},
		"X-Client-Proto":      {"https"},
		"X-Client-Proto-Ver":  {"HTTP/1.1"},
		"Endpoint-Timeout":    {"900"},
		"X-Forwarded-For":     {"203.0.113.7"},
	}
}

// FCHeaders are the headers Aliyun FC adds to HTTP-trigger requests, including
// the function role's temporary STS credentials, with made-up values.
func FCHeaders() http.Header {
	return http.Header{
		"X-Fc-Access-Key-Id":                     {"STS.fakeAccessKeyIdForTests"},
		"X-Fc-Access-Key-Secret":                 {"fakeAccessKeySecretForTests"},
		"X-Fc-Security-Token":                    {"CAISfakeSecurityTokenForTests"},
		"X-Fc-Request-Id":                        {"1-6540a0b0-0000000000000000"},
		"X-Fc-Region":                            {"cn-hangzhou"},
		"X-Fc-Account-Id":                        {"1234567890123456"},
		"X-Fc-Function-Name":                     {"chatgpt-proxy"},
		"X-Fc-Function-Handler":                  {"index.handler"},
		"X-Fc-Function-Memory":                   {"512"},
		"X-Fc-Function-Timeout":                  {"600"},
		"X-Fc-Service-Name":                      {"proxy"},
		"X-Fc-Qualifier":                         {"LATEST"},
		"X-Fc-Control-Path":                      {"/http-invoke"},
		"X-Fc-Base-Path":                         {"/2016-08-15/proxy/proxy/chatgpt-proxy"},
		"X-Fc-Client-Ip":                         {"203.0.113.7"},
		"X-Fc-Tracing-Opentracing-Span-Context":  {"124ed43254b54966:124ed43254b54966:0:1"},
		"X-Fc-Tracing-Opentracing-Span-Baggages": {"e30="},
		"X-Forwarded-Proto":                      {"https"},
	}
}

// ClientHeaders are what an OpenAI SDK sends; they must reach the upstream.
func ClientHeaders() http.Header {
	return http.Header{
		"Authorization": {"Bearer sk-test-client-key"},
		"Content-Type":  {"application/json"},
		"Openai-Beta":   {"assistants=v2"},
	}
}

// Seen is one request as the upstream received it.
type Seen struct {
	Method string
	URI    string
	Header http.Header
	Body   string
}

// recorder keeps the requests a mock upstream received.
type recorder struct {
	mu   sync.Mutex
	seen []Seen
}

// record reads r's body and keeps the request; it returns the body.
func (rc *recorder) record(r *http.Request) string {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.seen = append(rc.seen, Seen{Method: r.Method, URI: r.RequestURI, Header: r.Header.Clone(), Body: string(body)})
	return string(body)
}

// Seen returns the requests received so far.
func (rc *recorder) Seen() []Seen {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Seen(nil), rc.seen...)
}

// Last returns the last request received, failing the test if there is none.
func (rc *recorder) Last(t *testing.T) Seen {
	t.Helper()
	s := rc.Seen()
	if len(s) == 0 {
		t.Fatal("upstream received no request")
	}
	return s[len(s)-1]
}

// Upstream is a mock AI API. It records every request. A request whose body
// contains "stream":true gets an SSE answer: the first event, flushed, then
// nothing until Release is called, then the second event.
type Upstream struct {
	*httptest.Server
	recorder
	release chan struct{}
	once    sync.Once
	// ExtraResponseHeaders are added to every non-streaming answer.
	ExtraResponseHeaders http.Header
}

// NewUpstream starts an Upstream on 127.0.0.1; it is closed with the test.
func NewUpstream(t *testing.T) *Upstream {
	t.Helper()
	u := &Upstream{release: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(func() {
		u.Release()
		u.Server.Close()
	})
	return u
}

// Release lets blocked SSE answers send their second event.
func (u *Upstream) Release() { u.once.Do(func() { close(u.release) }) }

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	body := u.record(r)
	if !strings.Contains(body, `"stream":true`) {
		for k, v := range u.ExtraResponseHeaders {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "req_test")
		_, _ = io.WriteString(w, `{"object":"chat.completion"}`)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	_, _ = io.WriteString(w, "data: {\"n\":1}\n\n")
	_ = http.NewResponseController(w).Flush()
	select {
	case <-u.release:
	case <-r.Context().Done():
		return
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
}

// StreamRequestBody asks the Upstream for an SSE answer.
const StreamRequestBody = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`

// CheckSSE sends a streaming request to url and proves the answer streams:
// it is chunked, and its first event is read while the upstream is still
// blocked before its second. extra headers are added to the request.
func CheckSSE(t *testing.T, u *Upstream, url string, extra http.Header) {
	t.Helper()
	// On failure the deferred calls unblock everything before the body is
	// closed (closing it waits for a read in progress): the upstream finishes
	// its stream and the request's context ends.
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(StreamRequestBody))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ClientHeaders() {
		req.Header[k] = v
	}
	for k, v := range extra {
		req.Header[k] = v
	}
	defer cancel()
	defer u.Release()
	type result struct {
		res *http.Response
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		done <- result{res, err}
	}()
	var res *http.Response
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		res = r.res
	case <-time.After(30 * time.Second):
		t.Fatal("no response headers while the upstream was blocked after its first event: the response is buffered")
	}
	defer res.Body.Close()
	defer cancel()
	defer u.Release()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("status = %d (%s); want 200", res.StatusCode, b)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q; want text/event-stream", ct)
	}
	if len(res.TransferEncoding) != 1 || res.TransferEncoding[0] != "chunked" || res.ContentLength != -1 {
		t.Errorf("TransferEncoding = %q, ContentLength = %d; want chunked with no length", res.TransferEncoding, res.ContentLength)
	}
	br := bufio.NewReader(res.Body)
	first := make(chan string, 1)
	go func() { first <- readEvent(br) }()
	select {
	case ev := <-first:
		if ev != "data: {\"n\":1}\n\n" {
			t.Fatalf("first event = %q; want data: {\"n\":1}", ev)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("first SSE event not delivered while the upstream was blocked: the response is buffered")
	}
	u.Release()
	second := make(chan string, 1)
	go func() { second <- readEvent(br) }()
	select {
	case ev := <-second:
		if ev != "data: [DONE]\n\n" {
			t.Errorf("second event = %q; want data: [DONE]", ev)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("second SSE event not delivered 30s after the upstream sent it")
	}
}

// readEvent reads one SSE event, up to and including its blank line.
func readEvent(br *bufio.Reader) string {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil || line == "\n" {
			return b.String()
		}
	}
}

// CheckNoPlatformHeaders fails the test for every header of platform that
// reached the upstream, and for every client header that did not.
func CheckNoPlatformHeaders(t *testing.T, got http.Header, platform http.Header) {
	t.Helper()
	for name := range platform {
		if v, ok := got[http.CanonicalHeaderKey(name)]; ok {
			t.Errorf("upstream received platform header %s: %q", name, v)
		}
	}
	for name, want := range ClientHeaders() {
		if g := got.Get(name); g != want[0] {
			t.Errorf("upstream header %s = %q; want %q", name, g, want[0])
		}
	}
}

// LambdaPrelude is the JSON head of a streamed Lambda function URL reply.
type LambdaPrelude struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Cookies    []string          `json:"cookies"`
}

// ReadLambdaPrelude reads a streamed function URL reply up to and including
// the 8 NUL bytes that end its prelude, exactly as Lambda reads what the
// function sends; the body follows in r.
func ReadLambdaPrelude(t *testing.T, r *bufio.Reader) LambdaPrelude {
	t.Helper()
	var head []byte
	for !bytes.HasSuffix(head, make([]byte, 8)) {
		b, err := r.ReadByte()
		if err != nil {
			t.Fatalf("reading prelude %q: %v", head, err)
		}
		head = append(head, b)
	}
	var p LambdaPrelude
	if err := json.Unmarshal(head[:len(head)-8], &p); err != nil {
		t.Fatalf("prelude %q: %v", head, err)
	}
	return p
}
