package core

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// Keys planted in the access-control tests: none of them may appear in a log
// line or in a response.
const (
	testProxyKey  = "pk-alice-0123456789abcdef"
	testProxyKey2 = "pk-0123456789abcdef-second"
	testRealKey   = "sk-real-UPSTREAM-secret-9f8e7d6c5b4a"
)

// keyedEnv is the settings of a proxy that hands out two keys (one named)
// and injects the real one.
func keyedEnv() map[string]string {
	return map[string]string{
		"OXY_AUTH_KEYS":        "alice:" + testProxyKey + ", " + testProxyKey2,
		"OXY_UPSTREAM_API_KEY": testRealKey,
	}
}

// accessUpstream is a mock upstream on 127.0.0.1 that counts its requests and
// records the headers of the last one.
type accessUpstream struct {
	srv  *httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	last http.Header
}

// newAccessUpstream starts the mock upstream; respond, if set, writes its
// answer (by default 200 with a small JSON body).
func newAccessUpstream(t *testing.T, respond http.HandlerFunc) *accessUpstream {
	t.Helper()
	u := &accessUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		u.last = r.Header.Clone()
		u.mu.Unlock()
		if respond != nil {
			respond(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *accessUpstream) lastHeader() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

// accessProxy is the proxy under test, on a real socket, with its log captured.
type accessProxy struct {
	srv    *httptest.Server
	log    *testkit.LogBuffer
	client *http.Client
}

// startAccessProxy runs core.New with env (OXY_TARGET defaults to the
// upstream) behind an httptest server on 127.0.0.1, logging at debug level.
// wrap, if set, stands in for a platform adapter; transport may be nil.
func startAccessProxy(t *testing.T, up *accessUpstream, env map[string]string, transport http.RoundTripper, wrap func(http.Handler) http.Handler) *accessProxy {
	t.Helper()
	full := map[string]string{"OXY_LOG_LEVEL": "debug"}
	if up != nil {
		full["OXY_TARGET"] = up.srv.URL
	}
	for k, v := range env {
		full[k] = v
	}
	cfg, err := FromEnv(testkit.Lookup(full), Options{Environ: testkit.Environ(full)})
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	p := &accessProxy{log: &testkit.LogBuffer{}}
	proxy := New(cfg, NewLogger(cfg, p.log), transport)
	var h http.Handler = proxy
	if wrap != nil {
		h = proxy.WithAdapter(wrap(proxy)) // as start.Handler serves a platform
	}
	p.srv = httptest.NewServer(h)
	tr := &http.Transport{}
	p.client = &http.Client{Transport: tr}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		p.srv.Close()
	})
	return p
}

// logs waits for every request to finish (closing the proxy) and returns the log.
func (p *accessProxy) logs() string {
	p.client.Transport.(*http.Transport).CloseIdleConnections()
	p.srv.Close()
	return p.log.String()
}

// waitLog returns the log once it contains want, or fails after a generous
// wait (for lines written after a hijacked connection ends).
func (p *accessProxy) waitLog(t *testing.T, want string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		logs := p.log.String()
		if strings.Contains(logs, want) {
			return logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q:\n%s", want, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// do sends a request with the given headers and returns the response and its body.
func (p *accessProxy) do(t *testing.T, method, path string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, p.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	res, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return res, string(body)
}

// acHeader builds a header from name, value pairs.
func acHeader(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// acErrorCode checks that body is an OpenAI-shaped error and returns its code.
func acErrorCode(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error *APIError `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("body %q is not an OpenAI-shaped error (%v)", body, err)
	}
	return e.Error.Code
}

// TestAccess_checkOrder proves the order of the checks: health before the
// allow-list, the allow-list before CORS preflights, preflights before the key.
func TestAccess_checkOrder(t *testing.T) {
	up := newAccessUpstream(t, nil)
	env := keyedEnv()
	env["OXY_ALLOW_CIDRS"] = "10.0.0.0/8" // the test client (127.0.0.1) is outside
	env["OXY_CORS_ORIGINS"] = "https://app.example.com"
	p := startAccessProxy(t, up, env, nil, nil)
	preflight := acHeader("Origin", "https://app.example.com", "Access-Control-Request-Method", "POST")

	if res, _ := p.do(t, "GET", "/healthz", nil); res.StatusCode != http.StatusOK {
		t.Errorf("health from a refused address: status %d; want 200 (health comes first)", res.StatusCode)
	}
	if res, body := p.do(t, "OPTIONS", "/v1/chat/completions", preflight); res.StatusCode != http.StatusForbidden || acErrorCode(t, body) != "address_not_allowed" {
		t.Errorf("preflight from a refused address: %d %s; want 403 address_not_allowed", res.StatusCode, body)
	}

	env["OXY_ALLOW_CIDRS"] = "127.0.0.1"
	p = startAccessProxy(t, up, env, nil, nil)
	if res, _ := p.do(t, "OPTIONS", "/v1/chat/completions", preflight); res.StatusCode != http.StatusNoContent {
		t.Errorf("preflight without a key: status %d; want 204 (preflight before the key check)", res.StatusCode)
	}
	if res, body := p.do(t, "POST", "/v1/chat/completions", acHeader("Origin", "https://app.example.com")); res.StatusCode != http.StatusUnauthorized || acErrorCode(t, body) != "missing_api_key" {
		t.Errorf("request without a key: %d %s; want 401 missing_api_key", res.StatusCode, body)
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("upstream hit %d times; want 0", n)
	}
}

// TestAccess_offByDefault proves that without settings nothing is checked and
// the client's own credentials reach the upstream unchanged.
func TestAccess_offByDefault(t *testing.T) {
	up := newAccessUpstream(t, nil)
	p := startAccessProxy(t, up, nil, nil, nil)
	res, _ := p.do(t, "GET", "/v1/models", acHeader("Authorization", "Bearer sk-client-own", "Api-Key", "azure-own",
		"Sec-WebSocket-Protocol", "realtime, openai-insecure-api-key.sk-client-own"))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d; want 200", res.StatusCode)
	}
	got := up.lastHeader()
	if got.Get("Authorization") != "Bearer sk-client-own" || got.Get("Api-Key") != "azure-own" ||
		got.Get("Sec-Websocket-Protocol") != "realtime, openai-insecure-api-key.sk-client-own" {
		t.Errorf("upstream got %v; want the client's credentials unchanged", got)
	}
	if strings.Contains(p.logs(), "caller=") {
		t.Error("log names a caller although no proxy keys are set")
	}
}
