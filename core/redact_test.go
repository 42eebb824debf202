package core

import (
	"strings"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://api.openai.com/v1", "https://api.openai.com/v1"},
		{"api.openai.com", "api.openai.com"},
		{"info", "info"},
		{"http://user:pass@host/", "http://[redacted]@host/"},
		{"http://user:p@ss@host:8080/base", "http://[redacted]@host:8080/base"},
		{"user:pass@host", "[redacted]@host"},
		{"https://host/base?key=sk-123&api-version=2024", "https://host/base?key=[redacted]&api-version=[redacted]"},
		{"https://host/?sk-123", "https://host/?[redacted]"},
		{"https://host/?a=&b", "https://host/?a=&[redacted]"},
		{"https://host/#token", "https://host/#[redacted]"},
		{"https://u:p@host/?k=v#f", "https://[redacted]@host/?k=[redacted]#[redacted]"},
		{"http://us%zzer:pa ss@host", "http://[redacted]@host"},
		{"/healthz", "/healthz"},
		{"/a@b", "/a@b"},
	} {
		if got := redactURL(tc.in); got != tc.want {
			t.Errorf("redactURL(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

// TestFromEnv_urlSettingsRedacted: a target or origin with credentials or a
// key in its query is refused without printing them.
func TestFromEnv_urlSettingsRedacted(t *testing.T) {
	for _, env := range []map[string]string{
		{"OXY_TARGET": "http://user:SECRETPASS@host/"},
		{"OXY_TARGET": "https://host/v1?key=SECRETKEY"},
		{"OXY_TARGET": "https://host/v1?SECRETKEY"},
		{"OXY_TARGET": "http://user:SECRET%zzPASS@host/"},
		{"OXY_TARGET": "http://user:SECRET PASS@host/"},
		{"OXY_TARGET": "user:SECRETPASS@host"},
		{"OXY_TARGET": "ftp://user:SECRETPASS@host/"},
		{"OXY_CORS_ORIGINS": "https://user:SECRETPASS@app.example"},
		{"OXY_CORS_ORIGINS": "https://app.example/?token=SECRETKEY"},
		{"OXY_CORS_ORIGINS": "*,https://user:SECRETPASS@app.example"},
	} {
		_, err := FromEnv(testkit.Lookup(env), Options{})
		if err == nil {
			t.Errorf("%v accepted; want refused", env)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "SECRET") || strings.Contains(msg, "zz") {
			t.Errorf("%v: message shows the secret:\n%s", env, msg)
		}
	}
}

// TestFromEnv_strictListenAndLimits: values that were accepted and made no
// sense (issue 17, item 9) stop startup.
func TestFromEnv_strictListenAndLimits(t *testing.T) {
	for _, tc := range []struct {
		name, value, want string
	}{
		{"OXY_HOST", "[127.0.0.1", "must be a host name or IP address"},
		{"OXY_HOST", "127.0.0.1]", "must be a host name or IP address"},
		{"OXY_HOST", "[127.0.0.1]", "must be a host name or IP address"},
		{"OXY_HOST", "exa$mple", "must be a host name or IP address"},
		{"OXY_HOST", "host:9000", "must be a host name or IP address"},
		{"OXY_HOST", "-bad.example", "must be a host name or IP address"},
		{"OXY_PORT", "+27990", "must be a port number"},
		{"OXY_PORT", "0x2328", "must be a port number"},
		{"OXY_REQUEST_TIMEOUT", "1ns", "too short"},
		{"OXY_REQUEST_TIMEOUT", "999ms", "too short"},
		{"OXY_DIAL_TIMEOUT", "1ms", "too short"},
		{"OXY_CLIENT_BODY_TIMEOUT", "10ms", "too short"},
		{"OXY_SEND_TIMEOUT", "-1s", "must be a positive duration"},
		{"OXY_MAX_CONNECTIONS", "-1", "must be a whole number"},
		{"OXY_MAX_CONNECTIONS", "+5", "must be a whole number"},
		{"OXY_MAX_CONNECTIONS", "many", "must be a whole number"},
	} {
		_, err := FromEnv(testkit.Lookup(map[string]string{tc.name: tc.value}), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.name+"=") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: err = %v; want %q", tc.name, tc.value, err, tc.want)
		}
	}
	for _, tc := range []struct{ name, value, want string }{
		{"OXY_HOST", "[::1]", "::1"},
		{"OXY_HOST", "::1", "::1"},
		{"OXY_HOST", "localhost", "localhost"},
		{"OXY_HOST", "proxy-1.internal.example", "proxy-1.internal.example"},
		{"OXY_HOST", "", ""},
	} {
		c, err := FromEnv(testkit.Lookup(map[string]string{tc.name: tc.value}), Options{})
		if err != nil || c.Host != tc.want {
			t.Errorf("%s=%q: host %q, err %v; want %q", tc.name, tc.value, c.Host, err, tc.want)
		}
	}
	c, err := FromEnv(testkit.Lookup(map[string]string{"OXY_REQUEST_TIMEOUT": "1s", "OXY_SHUTDOWN_GRACE": "10ms",
		"OXY_MAX_CONNECTIONS": "1000"}), Options{})
	if err != nil || c.ShutdownGrace.Milliseconds() != 10 || c.MaxConnections != 1000 {
		t.Errorf("1s request timeout, a 10ms grace, 1000 connections: %v; want accepted", err)
	}
}

// TestFromEnv_keyHeaderNotAClientAddressOrPlatformHeader: the real key may
// not ride in a header that proxies rewrite and log (X-Forwarded-For) or one
// the platforms own.
func TestFromEnv_keyHeaderNotAClientAddressOrPlatformHeader(t *testing.T) {
	for _, name := range []string{"X-Forwarded-For", "x-forwarded-host", "X-Forwarded-Anything", "Forwarded", "X-Real-Ip",
		"True-Client-IP", "X-Fc-Key", "x-scf-key", "Host", "Content-Length"} {
		env := map[string]string{"OXY_UPSTREAM_API_KEY": "sk-real-0123456789", "OXY_ALLOW_CIDRS": "127.0.0.1",
			"OXY_UPSTREAM_API_KEY_HEADER": name}
		_, err := FromEnv(testkit.Lookup(env), Options{})
		if err == nil || !strings.Contains(err.Error(), "OXY_UPSTREAM_API_KEY_HEADER") {
			t.Errorf("key header %q: err = %v; want refused", name, err)
		}
	}
	env := map[string]string{"OXY_UPSTREAM_API_KEY": "sk-real-0123456789", "OXY_ALLOW_CIDRS": "127.0.0.1",
		"OXY_UPSTREAM_API_KEY_HEADER": "x-api-key"}
	if _, err := FromEnv(testkit.Lookup(env), Options{}); err != nil {
		t.Errorf("x-api-key refused: %v", err)
	}
}
