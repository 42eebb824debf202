package core

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// TestProxy_headerSecurity is the security table: what the upstream must never
// see, and what must still arrive.
func TestProxy_headerSecurity(t *testing.T) {
	got := make(chan seen, 1)
	p := newTestProxy(t, recordingUpstream(got, 200, nil, nil), "", map[string]string{"OXY_HOP_HEADER_PREFIX": "X-Custom-, x-other"})
	raw := "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy.example\r\nContent-Length: 2\r\n" +
		"Authorization: Bearer sk-keep\r\n" +
		"X-Keep: yes\r\n" +
		// Platform credentials and context: stripped in every build.
		"X-Fc-Access-Key-Id: STS.id\r\nX-Fc-Access-Key-Secret: secret\r\nX-Fc-Security-Token: token\r\nx-fc-request-id: r1\r\n" +
		"X-Scf-Uin: 100000\r\nX-Scf-Secret-Key: sk\r\nX-Scf-Session-Token: st\r\nx-scf-remote-addr: 1.2.3.4\r\n" +
		"X-Golambdaproxy-Apigw-Context: {\"accountId\":\"123\"}\r\n" +
		// Configured prefixes, case-insensitive.
		"X-Custom-Thing: 1\r\nx-CUSTOM-other: 2\r\nX-Otherwise: 3\r\n" +
		// Client address: never passed on by default.
		"X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Real-Ip: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 443\r\n" +
		// Cookies belong to the proxy's origin.
		"Cookie: session=abc\r\n" +
		// Hop-by-hop, and a header named in Connection.
		"Connection: keep-alive, X-Hop-Named\r\nX-Hop-Named: secret\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic abc\r\nTe: trailers\r\n" +
		"\r\n{}"
	res := rawRequest(t, p.URL, raw)
	res.Body.Close()
	s := <-got
	for _, name := range []string{
		"X-Fc-Access-Key-Id", "X-Fc-Access-Key-Secret", "X-Fc-Security-Token", "X-Fc-Request-Id",
		"X-Scf-Uin", "X-Scf-Secret-Key", "X-Scf-Session-Token", "X-Scf-Remote-Addr", "X-Golambdaproxy-Apigw-Context",
		"X-Custom-Thing", "X-Custom-Other", "X-Otherwise",
		"X-Forwarded-For", "Forwarded", "X-Real-Ip", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
		"Cookie", "X-Hop-Named", "Keep-Alive", "Proxy-Authorization",
	} {
		if v := s.Header.Values(name); len(v) > 0 {
			t.Errorf("upstream received %s: %q", name, v)
		}
	}
	if s.Header.Get("Authorization") != "Bearer sk-keep" || s.Header.Get("X-Keep") != "yes" {
		t.Errorf("end-to-end headers lost: %v", s.Header)
	}
}

func TestProxy_forwardClientIPIsOptIn(t *testing.T) {
	got := make(chan seen, 1)
	p := newTestProxy(t, recordingUpstream(got, 200, nil, nil), "", map[string]string{"OXY_FORWARD_CLIENT_IP": "true"})
	res := rawRequest(t, p.URL, "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-Ip: 6.6.6.6\r\n\r\n")
	res.Body.Close()
	s := <-got
	// The client's forged X-Forwarded-For is replaced by the real peer address.
	if xff := s.Header.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q; want the real peer 127.0.0.1 only", xff)
	}
	if v := s.Header.Get("X-Real-Ip"); v != "" {
		t.Errorf("forged X-Real-Ip passed on: %q", v)
	}
}

func TestProxy_responseHeaderHygiene(t *testing.T) {
	got := make(chan seen, 1)
	respHeader := http.Header{
		"Alt-Svc":           {`h3=":443"; ma=86400`},
		"Connection":        {"X-Upstream-Hop"},
		"X-Upstream-Hop":    {"1"},
		"X-Request-Id":      {"req_1"},
		"Openai-Version":    {"2020-10-01"},
		"Transfer-Encoding": {"chunked"},
	}
	p := newTestProxy(t, recordingUpstream(got, 200, respHeader, []byte("ok")), "", nil)
	res, err := http.Get(p.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	<-got
	for _, name := range []string{"Alt-Svc", "X-Upstream-Hop"} {
		if v := res.Header.Values(name); len(v) > 0 {
			t.Errorf("client received %s: %q", name, v)
		}
	}
	if res.Header.Get("X-Request-Id") != "req_1" || res.Header.Get("Openai-Version") != "2020-10-01" {
		t.Errorf("end-to-end response headers lost: %v", res.Header)
	}
}

func TestHeaderPolicy_Stripped(t *testing.T) {
	c, err := FromEnv(testkit.Lookup(map[string]string{"OXY_HOP_HEADER_PREFIX": "X-SCF"}), Options{Defaults: Defaults{StripHeaders: []string{"endpoint-timeout"}}})
	if err != nil {
		t.Fatal(err)
	}
	p := NewHeaderPolicy(c)
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"x-fc-access-key-secret", true},
		{"X-FC-SECURITY-TOKEN", true},
		{"x-scf-uin", true},
		{"X-Scfoo", true}, // the user's "X-SCF" prefix, as the original tool matched it
		{"x-golambdaproxy-apigw-context", true},
		{"endpoint-timeout", true},
		{"ENDPOINT-TIMEOUT", true},
		{"cookie", true},
		{"x-forwarded-for", true},
		{"x-real-ip", true},
		{"authorization", false},
		{"openai-organization", false},
		{"x-fcx", false},
		{"api-key", false},
	} {
		if got := p.Stripped(tc.name); got != tc.want {
			t.Errorf("Stripped(%q) = %v; want %v", tc.name, got, tc.want)
		}
	}
	// A hand-built map with non-canonical keys, as serverless adapters make.
	h := http.Header{"x-fc-access-key-secret": {"s"}, "cookie": {"c"}, "authorization": {"a"}}
	p.CleanRequest(h)
	if len(h) != 1 || strings.Join(h["authorization"], "") != "a" {
		t.Errorf("CleanRequest left %v; want only authorization", h)
	}
}
