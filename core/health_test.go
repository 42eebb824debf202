package core

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestHealth_route answers GET and HEAD of the health path locally, without
// a key (proxy keys are on) and without the upstream; other methods and
// paths below it are proxied as usual.
func TestHealth_route(t *testing.T) {
	up := newAccessUpstream(t, nil)
	p := startAccessProxy(t, up, keyedEnv(), nil, nil)
	res, body := p.do(t, "GET", "/healthz", nil)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("GET: %d %s %q; want 200 JSON", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if got["status"] != "ok" || got["version"] != VersionString() || len(got) != 3 {
		t.Errorf("body = %v; want status ok, version %q, uptime_seconds", got, VersionString())
	}
	if up, ok := got["uptime_seconds"].(float64); !ok || up < 0 {
		t.Errorf("uptime_seconds = %v; want a number >= 0", got["uptime_seconds"])
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q; want no-store", res.Header.Get("Cache-Control"))
	}
	res, body = p.do(t, "HEAD", "/healthz", nil)
	if res.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD: %d %q; want 200 without a body", res.StatusCode, body)
	}
	if n := up.hits.Load(); n != 0 {
		t.Fatalf("health checks reached the upstream %d times; want 0", n)
	}
	for _, rq := range []struct{ method, path string }{{"POST", "/healthz"}, {"GET", "/healthz/x"}, {"GET", "/healthz2"}} {
		if res, _ := p.do(t, rq.method, rq.path, nil); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s: status %d; want 401 (not the health route: proxied, so a key is needed)", rq.method, rq.path, res.StatusCode)
		}
	}
	if logs := p.logs(); strings.Contains(logs, "method=GET path=/healthz status") || strings.Contains(logs, "method=HEAD") {
		t.Errorf("health checks are in the access log; want no line per probe:\n%s", logs)
	}
}

func TestHealth_customAndDisabled(t *testing.T) {
	up := newAccessUpstream(t, nil)
	p := startAccessProxy(t, up, map[string]string{"OXY_HEALTH_PATH": "/_proxy/health"}, nil, nil)
	if res, _ := p.do(t, "GET", "/_proxy/health", nil); res.StatusCode != http.StatusOK || up.hits.Load() != 0 {
		t.Errorf("custom path: status %d, upstream hits %d; want 200 locally", res.StatusCode, up.hits.Load())
	}
	if p.do(t, "GET", "/healthz", nil); up.hits.Load() != 1 {
		t.Errorf("/healthz with a custom health path: upstream hits %d; want it proxied", up.hits.Load())
	}
	p = startAccessProxy(t, up, map[string]string{"OXY_HEALTH_PATH": ""}, nil, nil)
	if p.do(t, "GET", "/healthz", nil); up.hits.Load() != 2 {
		t.Errorf("health off: upstream hits %d; want /healthz proxied", up.hits.Load())
	}
}

func TestCheckHealthPath(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{"", ""},
		{"/healthz", ""},
		{"/_proxy/health", ""},
		{"/version-check", ""},
		{"/", "clean path below /"},
		{"healthz", "must start with /"},
		{"/healthz/", "clean path"},
		{"/a//b", "clean path"},
		{"/a/../v1", "clean path"},
		{"/v1", "would hide API paths"},
		{"/v1/health", "would hide API paths"},
		{"/V1/models", "would hide API paths"},
		{"/v1beta/health", "would hide API paths"},
		{"/openai/health", "would hide API paths"},
		{"/health?x=1", "plain path"},
		{"/health z", "plain path"},
	} {
		err := checkHealthPath(tc.in)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("checkHealthPath(%q) = %v; want %q", tc.in, err, tc.err)
		}
	}
}
