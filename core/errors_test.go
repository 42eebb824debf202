package core

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// openAIError is the shape OpenAI SDKs parse.
type openAIError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func readAPIError(t *testing.T, res *http.Response) openAIError {
	t.Helper()
	defer res.Body.Close()
	var e openAIError
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" || e.Error.Code == nil {
		t.Fatalf("body %q is not an OpenAI-shaped error (%v)", b, err)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q; want application/json", ct)
	}
	return e
}

func closedPort(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
}

func TestProxy_upstreamUnreachableIs502Quickly(t *testing.T) {
	p := newTestProxyTo(t, nil, "http://"+closedPort(t), nil)
	start := time.Now()
	res, err := http.Post(p.URL+"/v1/chat/completions", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d; want 502", res.StatusCode)
	}
	if e := readAPIError(t, res); *e.Error.Code != "upstream_unreachable" {
		t.Errorf("code %q; want upstream_unreachable", *e.Error.Code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v; want an answer well within the dial timeout", d)
	}
	waitFor(t, func() bool { return len(p.logLines()) == 1 })
	if l := p.logLines()[0]; !strings.Contains(l, `"status":502`) || !strings.Contains(l, `"error":`) {
		t.Errorf("log line %s; want status 502 with the error", l)
	}
}

func TestProxy_upstreamResetIs502(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn) {
		c.(*net.TCPConn).SetLinger(0) // RST on close
		buf := make([]byte, 1024)
		c.Read(buf)
	})
	p := newTestProxyTo(t, nil, up, nil)
	res, err := http.Post(p.URL+"/v1/chat/completions", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d; want 502", res.StatusCode)
	}
	if e := readAPIError(t, res); *e.Error.Code != "upstream_error" {
		t.Errorf("code %q; want upstream_error", *e.Error.Code)
	}
}

func TestProxy_requestTimeoutIs504(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	})
	p := newTestProxy(t, up, "", map[string]string{"OXY_REQUEST_TIMEOUT": "1s"})
	res, err := http.Post(p.URL+"/v1/chat/completions", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("status %d; want 504", res.StatusCode)
	}
	if e := readAPIError(t, res); *e.Error.Code != "upstream_timeout" {
		t.Errorf("code %q; want upstream_timeout", *e.Error.Code)
	}
}

func TestWriteError_shape(t *testing.T) {
	rec := &fakeWriter{h: http.Header{}}
	WriteError(rec, &APIError{Status: 418, Message: "m", Type: "t", Code: "c"})
	if rec.status != 418 || rec.body.String() != `{"error":{"message":"m","type":"t","code":"c"}}`+"\n" {
		t.Errorf("got %d %q", rec.status, rec.body.String())
	}
}

type fakeWriter struct {
	h      http.Header
	status int
	body   strings.Builder
}

func (f *fakeWriter) Header() http.Header         { return f.h }
func (f *fakeWriter) WriteHeader(s int)           { f.status = s }
func (f *fakeWriter) Write(b []byte) (int, error) { return f.body.Write(b) }
