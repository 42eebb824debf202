package core

import (
	"net/http"
	"strings"
	"testing"
)

func corsEnv(origins string) map[string]string {
	env := keyedEnv()
	env["OXY_CORS_ORIGINS"] = origins
	return env
}

// TestCORS_preflightAnsweredLocally sends the preflight a browser sends before
// an SDK call: the proxy answers it without a key and without the upstream,
// granting only the allowed headers among those requested.
func TestCORS_preflightAnsweredLocally(t *testing.T) {
	up := newAccessUpstream(t, nil)
	p := startAccessProxy(t, up, corsEnv("https://app.example.com, http://localhost:5173"), nil, nil)
	res, body := p.do(t, "OPTIONS", "/v1/chat/completions", acHeader(
		"Origin", "https://app.example.com",
		"Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization,content-type,openai-beta,OpenAI-Organization,x-stainless-os,x-stainless-retry-count,api-key,x-evil,cookie"))
	if res.StatusCode != http.StatusNoContent || body != "" {
		t.Fatalf("preflight: %d %q; want 204 with no body", res.StatusCode, body)
	}
	for name, want := range map[string]string{
		"Access-Control-Allow-Origin":  "https://app.example.com",
		"Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
		"Access-Control-Allow-Headers": "authorization, content-type, openai-beta, openai-organization, x-stainless-os, x-stainless-retry-count, api-key",
		"Access-Control-Max-Age":       "7200",
	} {
		if got := res.Header.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q; want exactly %q", name, got, want)
		}
	}
	if v := strings.Join(res.Header.Values("Vary"), ", "); !strings.Contains(v, "Origin") || !strings.Contains(v, "Access-Control-Request-Headers") {
		t.Errorf("Vary = %q; want Origin and Access-Control-Request-Headers", v)
	}
	if res.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Error("preflight allows credentials; want never")
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("upstream hit %d times; want 0", n)
	}
}

func TestCORS_preflightOriginNotAllowed(t *testing.T) {
	up := newAccessUpstream(t, nil)
	p := startAccessProxy(t, up, corsEnv("https://app.example.com"), nil, nil)
	for _, origin := range []string{"https://evil.example", "https://app.example.com.evil.example", "null", "http://app.example.com"} {
		res, body := p.do(t, "OPTIONS", "/v1/chat/completions", acHeader("Origin", origin, "Access-Control-Request-Method", "POST"))
		if res.StatusCode != http.StatusForbidden || acErrorCode(t, body) != "origin_not_allowed" {
			t.Errorf("origin %s: %d %s; want 403 origin_not_allowed", origin, res.StatusCode, body)
		}
		if v := res.Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("origin %s: Access-Control-Allow-Origin = %q; want none", origin, v)
		}
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("upstream hit %d times; want 0", n)
	}
}

// TestCORS_actualResponse proxies a request from an allowed origin to an
// upstream that sends its own CORS headers: the response carries the proxy's
// headers once each, none of the upstream's, and exposes the upstream's
// request id, rate-limit and retry headers.
func TestCORS_actualResponse(t *testing.T) {
	up := newAccessUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Expose-Headers", "X-Upstream-Own")
		h.Set("X-Request-Id", "req-1")
		h.Set("X-Ratelimit-Remaining-Requests", "99")
		h.Set("Openai-Processing-Ms", "12")
		h.Set("Retry-After", "1")
		h.Set("X-Upstream-Own", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	p := startAccessProxy(t, up, corsEnv("https://app.example.com"), nil, nil)
	res, _ := p.do(t, "POST", "/v1/chat/completions", acHeader("Origin", "https://app.example.com", "Authorization", "Bearer "+testProxyKey))
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d; want the upstream's 429", res.StatusCode)
	}
	for name, want := range map[string]string{
		"Access-Control-Allow-Origin":   "https://app.example.com",
		"Access-Control-Expose-Headers": "openai-processing-ms, retry-after, x-ratelimit-remaining-requests, x-request-id",
	} {
		if got := res.Header.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q; want exactly %q", name, got, want)
		}
	}
	if v := res.Header.Values("Access-Control-Allow-Credentials"); len(v) != 0 {
		t.Errorf("Access-Control-Allow-Credentials = %q; want the upstream's removed", v)
	}
	if !strings.Contains(strings.Join(res.Header.Values("Vary"), ","), "Origin") {
		t.Errorf("Vary = %q; want Origin", res.Header.Values("Vary"))
	}
}

// TestCORS_proxyErrorsReadable checks that a refusal made by the proxy (401)
// carries the CORS headers, so a browser app can show the error.
func TestCORS_proxyErrorsReadable(t *testing.T) {
	p := startAccessProxy(t, newAccessUpstream(t, nil), corsEnv("*"), nil, nil)
	res, body := p.do(t, "POST", "/v1/chat/completions", acHeader("Origin", "https://any.example"))
	if res.StatusCode != http.StatusUnauthorized || acErrorCode(t, body) != "missing_api_key" {
		t.Fatalf("%d %s; want 401", res.StatusCode, body)
	}
	if v := res.Header.Values("Access-Control-Allow-Origin"); len(v) != 1 || v[0] != "*" {
		t.Errorf("Access-Control-Allow-Origin = %q; want exactly *", v)
	}
}

// TestCORS_offPassesUpstreamHeaders checks the default: the proxy neither
// answers preflights nor touches the upstream's CORS headers.
func TestCORS_offPassesUpstreamHeaders(t *testing.T) {
	up := newAccessUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Headers", "authorization")
		w.WriteHeader(http.StatusOK)
	})
	p := startAccessProxy(t, up, nil, nil, nil)
	res, _ := p.do(t, "OPTIONS", "/v1/models", acHeader("Origin", "https://app.example.com", "Access-Control-Request-Method", "GET"))
	if res.StatusCode != http.StatusOK || up.hits.Load() != 1 {
		t.Fatalf("preflight: status %d, upstream hits %d; want the upstream's 200", res.StatusCode, up.hits.Load())
	}
	if v := res.Header.Values("Access-Control-Allow-Origin"); len(v) != 1 || v[0] != "*" {
		t.Errorf("Access-Control-Allow-Origin = %q; want the upstream's *", v)
	}
	if v := res.Header.Get("Access-Control-Allow-Headers"); v != "authorization" {
		t.Errorf("Access-Control-Allow-Headers = %q; want the upstream's", v)
	}
	if v := res.Header.Values("Vary"); len(v) != 0 {
		t.Errorf("Vary = %q; want none added", v)
	}
}

func TestAllowedRequestHeaders(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"Authorization, X-Stainless-Lang", "content-type"}, "authorization, x-stainless-lang, content-type"},
		{[]string{"x-evil, cookie, host, , openai-project"}, "openai-project"},
		{[]string{"anthropic-version,anthropic-dangerous-direct-browser-access,x-api-key"}, "anthropic-version, anthropic-dangerous-direct-browser-access, x-api-key"},
	} {
		if got := allowedRequestHeaders(tc.in); got != tc.want {
			t.Errorf("allowedRequestHeaders(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
