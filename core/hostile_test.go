package core

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// Regression tests for the holes a probe of the server with raw sockets found
// (issue 17). Each sends the bytes the probe sent; docs/HOSTILE.md compares
// the answers with nginx's.

// countingUpstream records the request URIs it is sent.
type countingUpstream struct {
	mu   sync.Mutex
	uris []string
}

func (u *countingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	u.mu.Lock()
	u.uris = append(u.uris, r.RequestURI)
	u.mu.Unlock()
	w.Write([]byte("ok"))
}

func (u *countingUpstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.uris...)
}

// rawExchange writes raw to a new connection to addr and returns everything
// the proxy sends back until it closes the connection (or 5 s pass).
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(conn)
	return string(b)
}

func apiErrorCode(t *testing.T, res *http.Response) string {
	t.Helper()
	e := readAPIError(t, res)
	return *e.Error.Code
}

func TestLeavesBasePath(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/v1/chat/completions", false},
		{"", false},
		{"/", false},
		{"/v1/models/gpt-3.5-turbo", false},
		{"/v1beta/models/gemini-1.5-pro:generateContent", false},
		{"/v1/files/...", false},
		{"/v1/files/..foo", false},
		{"/v1/files/foo..", false},
		{"/.well-known/x", false},
		{"/v1/./models", false},
		{"/v1/a/../models", false},
		{"/v1/%2e/models", false},
		{"/v1/files/%e4%bd%a0", false},
		{"/v1/x%2Fy", false},
		{"/..", true},
		{"/../admin", true},
		{"/./../admin", true},
		{"/v1/../../admin", true},
		{"/%2e%2e/admin", true},
		{"/%2E%2e/admin", true},
		{"/.%2e/admin", true},
		{"/v1/%2e%2e/%2E%2E/admin", true},
		{"/..%2fadmin", true},
		{"/v1/..%2F..%2Fadmin", true},
		{"/v1%2f..%2f..%2fadmin", true},
		{"/%252e%252e/admin", true},
		{"/%25252e%25252e/admin", true},
		{`/..\admin`, true},
		{"/..%5cadmin", true},
		{"/..;/admin", true},
		{"/v1/..;x=1/..;/admin", true},
		{"//../admin", true},
		{"/v1//../../admin", true},
		{"..", true},
		// Look-alikes and terminators that some decoder or normaliser on
		// the way turns into a dot segment.
		{"/v1/files/\u4f60\u597d", false},
		{"/v1/files/%c0%ae", false},
		{"/v1/%ef%bc%8e/x", false},
		{"/v1/files/a%3fb/..", false},
		{"/%c0%ae%c0%ae/admin", true},
		{"/%C0%AE%C0%AE/admin", true},
		{"/v1/%e0%80%ae%e0%80%ae/%e0%80%ae./admin", true},
		{"/..%c0%afadmin", true},
		{"/..%c1%9cadmin", true},
		{"/%ef%bc%8e%ef%bc%8e/admin", true},
		{"/\uff0e\uff0e/admin", true},
		{"/v1/\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fadmin", true},
		{"/%e2%80%a5/admin", true},
		{"/%ef%b9%92.%ef%bc%bcadmin", true},
		{"/..%3f/admin", true},
		{"/..%23/admin", true},
		{"/..%00/admin", true},
		{"/v1/..%253f/..%3f/admin", true},
	} {
		if got := leavesBasePath(tc.path); got != tc.want {
			t.Errorf("leavesBasePath(%q) = %v; want %v", tc.path, got, tc.want)
		}
	}
}

// TestHostile_dotSegmentsNeverLeaveBasePath: with a base path, "/../admin"
// forwarded as "/base/../admin" reaches /admin at any upstream that resolves
// dot segments, with the real key attached. nginx answers 400.
func TestHostile_dotSegmentsNeverLeaveBasePath(t *testing.T) {
	up := &countingUpstream{}
	p := newTestProxy(t, up, "/base", nil)
	for _, target := range []string{
		"/../admin",
		"/%2e%2e/admin",
		"/%2E%2E/admin",
		"/v1/../../admin",
		"/v1/%2e%2e/%2e%2e/admin",
		"/v1/..%2f..%2fadmin",
		"/%252e%252e/admin",
		`/..\admin`,
		"/..;/admin",
		"//../admin",
		"/%c0%ae%c0%ae/admin",
		"/\uff0e\uff0e/admin",
		"/..%3f/admin",
		"http://proxy.example/../admin",
		"http://proxy.example/%2e%2e/admin",
	} {
		res := rawRequest(t, p.URL, "GET "+target+" HTTP/1.1\r\nHost: proxy.example\r\n\r\n")
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s: status %d; want 400", target, res.StatusCode)
			res.Body.Close()
			continue
		}
		if code := apiErrorCode(t, res); code != "invalid_path" {
			t.Errorf("GET %s: code %q; want invalid_path", target, code)
		}
	}
	if got := up.seen(); len(got) != 0 {
		t.Errorf("upstream was sent %q; want nothing", got)
	}
	// Every other path is still forwarded byte for byte.
	for _, target := range []string{"/v1/a/../models", "/v1/models/gpt-3.5-turbo", "/v1/files/...", "/v1/%2e/x", "/v1/files/\u4f60%ef%bc%8e"} {
		res := rawRequest(t, p.URL, "GET "+target+" HTTP/1.1\r\nHost: proxy.example\r\n\r\n")
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET %s: status %d; want 200", target, res.StatusCode)
		}
	}
	want := []string{"/base/v1/a/../models", "/base/v1/models/gpt-3.5-turbo", "/base/v1/files/...", "/base/v1/%2e/x", "/base/v1/files/\u4f60%ef%bc%8e"}
	if got := up.seen(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("upstream got %q; want %q", got, want)
	}
}

// TestHostile_ambiguousFramingClosesConnection: a body framed by both
// Content-Length and chunked (or an HTTP/1.0 request with Transfer-Encoding)
// is read one way by a Content-Length front end and another way here; the
// rest must never be served as a second request (RFC 9112 section 6.1).
func TestHostile_ambiguousFramingClosesConnection(t *testing.T) {
	hidden := "GET /hidden HTTP/1.1\r\nHost: proxy.example\r\n\r\n"
	chunkedThenHidden := "0\r\n\r\n" + hidden
	// The health route is answered before any other check, so it must
	// close too: a hidden request behind it went upstream with the key.
	health := map[string]string{"OXY_HEALTH_PATH": "/healthz"}
	for _, tc := range []struct {
		name, raw string
		env       map[string]string
	}{
		{"content-length and chunked", "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy.example\r\n" +
			"Content-Length: " + itoa(len(chunkedThenHidden)) + "\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedThenHidden, nil},
		{"http/1.0 with transfer-encoding", "POST /v1/chat/completions HTTP/1.0\r\nHost: proxy.example\r\n" +
			"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" + hidden, nil},
		{"health GET with content-length and chunked", "GET /healthz HTTP/1.1\r\nHost: proxy.example\r\n" +
			"Content-Length: " + itoa(len(chunkedThenHidden)) + "\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedThenHidden, health},
		{"health HEAD with content-length and chunked", "HEAD /healthz HTTP/1.1\r\nHost: proxy.example\r\n" +
			"Content-Length: " + itoa(len(chunkedThenHidden)) + "\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedThenHidden, health},
		{"health over http/1.0 with transfer-encoding", "GET /healthz HTTP/1.0\r\nHost: proxy.example\r\n" +
			"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" + hidden, health},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &countingUpstream{}
			p := newTestProxy(t, up, "", tc.env)
			out := rawExchange(t, p.URL, tc.raw)
			if n := strings.Count(out, "HTTP/1."); n != 1 {
				t.Errorf("got %d responses; want 1 and the connection closed:\n%s", n, out)
			}
			if !strings.Contains(out, "Connection: close") {
				t.Errorf("response lacks Connection: close:\n%s", out)
			}
			for _, uri := range up.seen() {
				if uri == "/hidden" {
					t.Errorf("the smuggled request reached the upstream (saw %q)", up.seen())
				}
			}
		})
	}
}

// TestHostile_ambiguousFramingClosesAfterAdapterAnswers: a platform adapter
// that answers a request itself (FC's lifecycle hooks) must close the
// connection after ambiguous framing too, or the request hidden in the body
// is served next.
func TestHostile_ambiguousFramingClosesAfterAdapterAnswers(t *testing.T) {
	up := &countingUpstream{}
	upstream := httptest.NewServer(up)
	t.Cleanup(upstream.Close)
	cfg, err := FromEnv(testkit.Lookup(map[string]string{"OXY_TARGET": upstream.URL}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := New(cfg, nil, nil)
	adapter := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/initialize" {
			w.WriteHeader(http.StatusOK)
			return
		}
		h.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(h.WithAdapter(adapter))
	t.Cleanup(srv.Close)
	body := "0\r\n\r\nGET /hidden HTTP/1.1\r\nHost: proxy.example\r\n\r\n"
	out := rawExchange(t, srv.URL, "POST /initialize HTTP/1.1\r\nHost: proxy.example\r\n"+
		"Content-Length: "+itoa(len(body))+"\r\nTransfer-Encoding: chunked\r\n\r\n"+body)
	if n := strings.Count(out, "HTTP/1."); n != 1 || !strings.Contains(out, "Connection: close") {
		t.Errorf("got %d responses; want 1, with Connection: close:\n%s", n, out)
	}
	if seen := up.seen(); len(seen) != 0 {
		t.Errorf("the smuggled request reached the upstream (saw %q)", seen)
	}
}

// TestHostile_malformedClientBodyIs400: a client's broken chunked body is
// the client's fault: 400 and an info line, not 502 and a warning that
// fills the operator's 5xx alerts.
func TestHostile_malformedClientBodyIs400(t *testing.T) {
	up := &countingUpstream{}
	p := newTestProxy(t, up, "", nil)
	// A body that starts well and then breaks its framing.
	out := rawExchange(t, p.URL, "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy.example\r\n"+
		"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
	if err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d; want 400", res.StatusCode)
	}
	if code := apiErrorCode(t, res); code != "invalid_request_body" {
		t.Errorf("code %q; want invalid_request_body", code)
	}
	if n := strings.Count(out, "HTTP/1.1 "); n != 1 || !res.Close {
		t.Errorf("%d responses, close %v; want one, with Connection: close:\n%s", n, res.Close, out)
	}
	waitFor(t, func() bool { return len(p.logLines()) == 1 })
	line := p.logLines()[0]
	if !strings.Contains(line, `"level":"INFO"`) || !strings.Contains(line, `"status":400`) {
		t.Errorf("log line %s; want level INFO, status 400", line)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// readResponses reads responses (1xx included) from br until a final one.
func readResponses(t *testing.T, br *bufio.Reader) []*http.Response {
	t.Helper()
	var out []*http.Response
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res)
		if res.StatusCode >= 200 {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return out
		}
	}
}

// TestHostile_informationalResponsesGetTheirOwnHeaders: the proxy's CORS
// headers belong on the final response, and a 1xx from the upstream gets the
// response header policy (no Alt-Svc, no upstream CORS, no hop-by-hop).
func TestHostile_informationalResponsesGetTheirOwnHeaders(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/hints" {
			h := w.Header()
			h.Set("Link", "</style.css>; rel=preload")
			h.Set("Alt-Svc", `h3=":443"`)
			h.Set("Access-Control-Allow-Origin", "https://evil.example")
			h.Set("Connection", "X-Hop")
			h.Set("X-Hop", "1")
			w.WriteHeader(http.StatusEarlyHints)
			clear(h)
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	})
	p := newTestProxy(t, up, "", map[string]string{"OXY_CORS_ORIGINS": "https://app.example"})
	addr := strings.TrimPrefix(p.URL, "http://")

	checkFinal := func(t *testing.T, res *http.Response) {
		t.Helper()
		if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
			res.Header.Get("Vary") != "Origin" {
			t.Errorf("final response %d %v; want 200 with Access-Control-Allow-Origin: https://app.example, Vary: Origin",
				res.StatusCode, res.Header)
		}
	}
	t.Run("103 early hints", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "GET /v1/hints HTTP/1.1\r\nHost: proxy.example\r\nOrigin: https://app.example\r\n\r\n")
		all := readResponses(t, bufio.NewReader(conn))
		if len(all) != 2 || all[0].StatusCode != http.StatusEarlyHints {
			t.Fatalf("got %d responses; want a 103 then the final one", len(all))
		}
		hints := all[0].Header
		if hints.Get("Link") != "</style.css>; rel=preload" {
			t.Errorf("103 lacks the upstream's Link: %v", hints)
		}
		for _, name := range []string{"Alt-Svc", "Access-Control-Allow-Origin", "Connection", "X-Hop", "Vary"} {
			if v := hints.Values(name); len(v) > 0 {
				t.Errorf("103 carries %s: %q; want it dropped", name, v)
			}
		}
		checkFinal(t, all[1])
	})
	t.Run("100 continue", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy.example\r\nOrigin: https://app.example\r\n"+
			"Expect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n")
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusContinue {
			t.Fatalf("first response %d; want 100", res.StatusCode)
		}
		if v := res.Header.Values("Access-Control-Allow-Origin"); len(v) > 0 {
			t.Errorf("100 Continue carries the proxy's CORS header %q; want it on the final response", v)
		}
		io.WriteString(conn, "{}")
		all := readResponses(t, br)
		checkFinal(t, all[len(all)-1])
	})
	t.Run("no 1xx to an HTTP/1.0 client", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "GET /v1/hints HTTP/1.0\r\nHost: proxy.example\r\nOrigin: https://app.example\r\n\r\n")
		all := readResponses(t, bufio.NewReader(conn))
		if len(all) != 1 {
			t.Errorf("an HTTP/1.0 client got %d responses; want only the final one (RFC 9110 section 15.2)", len(all))
		}
		checkFinal(t, all[len(all)-1])
	})
}

// TestHostile_foreignUpgradesAndMethodsRefused: only WebSocket upgrades are
// proxied; h2c and other upgrades, the HTTP/2 preface, TRACE, CONNECT and
// asterisk-form targets are answered by the proxy and never reach the
// upstream (which would tunnel a 101 as raw bytes, or echo the real key).
func TestHostile_foreignUpgradesAndMethodsRefused(t *testing.T) {
	up := &countingUpstream{}
	realKey := "sk-REAL-UPSTREAM-KEY-0123456789"
	proxyKey := "proxy-key-abcdefghijklmnop"
	p := newTestProxy(t, up, "", map[string]string{"OXY_UPSTREAM_API_KEY": realKey, "OXY_AUTH_KEYS": proxyKey})
	auth := "Authorization: Bearer " + proxyKey + "\r\n"
	for _, tc := range []struct {
		name, raw string
		status    int
		code      string
	}{
		{"h2c", "GET /v1/models HTTP/1.1\r\nHost: p\r\n" + auth + "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
			"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", 400, "upgrade_not_supported"},
		{"other upgrade", "GET /v1/models HTTP/1.1\r\nHost: p\r\n" + auth + "Connection: Upgrade\r\nUpgrade: foo/1\r\n\r\n", 400, "upgrade_not_supported"},
		{"websocket by POST", "POST /v1/realtime HTTP/1.1\r\nHost: p\r\n" + auth + "Connection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n", 400, "upgrade_not_supported"},
		{"websocket over http/1.0", "GET /v1/realtime HTTP/1.0\r\nHost: p\r\n" + auth + "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 400, "upgrade_not_supported"},
		{"http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, ""},
		{"trace", "TRACE /v1/models HTTP/1.1\r\nHost: p\r\n" + auth + "\r\n", 405, "method_not_allowed"},
		{"connect", "CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n" + auth + "\r\n", 405, "method_not_allowed"},
		// httptest's server answers "OPTIONS *" itself (the HTTP builds
		// pass it on: httpserver.newServer); any other method is ours.
		{"asterisk form", "GET * HTTP/1.1\r\nHost: p\r\n" + auth + "\r\n", 400, "invalid_request_target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := rawExchange(t, p.URL, tc.raw)
			if strings.Contains(out, realKey) {
				t.Errorf("the answer carries the real key:\n%s", out)
			}
			if tc.status == 0 {
				if strings.HasPrefix(out, "HTTP/1.1 101") || strings.HasPrefix(out, "HTTP/1.1 2") {
					t.Errorf("the HTTP/2 preface was answered as a request:\n%s", out)
				}
				return
			}
			res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
			if err != nil {
				t.Fatalf("%v in %q", err, out)
			}
			if res.StatusCode != tc.status {
				t.Errorf("status %d; want %d", res.StatusCode, tc.status)
			}
			if code := apiErrorCode(t, res); code != tc.code {
				t.Errorf("code %q; want %q", code, tc.code)
			}
			if tc.status == 405 && res.Header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
		})
	}
	if got := up.seen(); len(got) != 0 {
		t.Errorf("upstream was sent %q; want nothing", got)
	}
	if strings.Contains(p.Log.String(), realKey) {
		t.Error("the log carries the real key")
	}
}

// TestHostile_malformedFramingRefused keeps holding what net/http already
// refuses: duplicate or garbled Content-Length, bare CR and NUL in headers,
// unknown transfer codings. None reaches the upstream.
func TestHostile_malformedFramingRefused(t *testing.T) {
	up := &countingUpstream{}
	p := newTestProxy(t, up, "", nil)
	for _, raw := range []string{
		"POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
		"POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 2, 3\r\n\r\nabc",
		"POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: +3\r\n\r\nabc",
		"POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 0x3\r\n\r\nabc",
		"GET /v1/x HTTP/1.1\r\nHost: p\r\nX-A: 1\rX-B: 2\r\n\r\n",
		"GET /v1/x HTTP/1.1\r\nHost: p\r\nX-A: a\x00b\r\n\r\n",
		"POST /v1/x HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"POST /v1/x HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	} {
		out := rawExchange(t, p.URL, raw)
		if !strings.HasPrefix(out, "HTTP/1.1 400") && !strings.HasPrefix(out, "HTTP/1.1 501") {
			t.Errorf("%q answered %q; want 400 or 501", raw, firstLine(out))
		}
	}
	if got := up.seen(); len(got) != 0 {
		t.Errorf("upstream was sent %q; want nothing", got)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// TestHostile_brokenUpstreamRepliesNeverEndCleanly keeps holding: whatever
// way an upstream's reply breaks off, the client's response does not end as
// if it were complete.
func TestHostile_brokenUpstreamRepliesNeverEndCleanly(t *testing.T) {
	for _, tc := range []struct{ name, reply string }{
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n"},
		{"cut mid-chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nhel"},
		{"no last chunk", "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nf\r\ndata: partial\n\n\r\n"},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := rawUpstream(t, func(c net.Conn) {
				if req, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
					io.Copy(io.Discard, req.Body)
					io.WriteString(c, tc.reply)
				}
			})
			p := newTestProxyTo(t, nil, up, nil)
			res, err := http.Get(p.URL + "/v1/chat/completions")
			if err != nil {
				return // cut before any header: not a clean end either
			}
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err == nil {
				t.Errorf("response ended cleanly with %q; want an error", b)
			}
		})
	}
}
