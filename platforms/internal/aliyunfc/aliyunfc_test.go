package aliyunfc

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

func newProxy(t *testing.T, up *platformtest.Upstream) *httptest.Server {
	return platformtest.NewProxy(t, Platform(platformtest.Lookup(map[string]string{"OXY_TARGET": up.URL})), up, nil)
}

func do(t *testing.T, method, url string, h http.Header, body string) (*http.Response, string) {
	t.Helper()
	return platformtest.Do(t, method, url, h, body)
}

func TestPort(t *testing.T) {
	tests := []struct {
		env        map[string]string
		want       int
		wantSource string
	}{
		{nil, 9000, "default"},
		{map[string]string{"FC_SERVER_PORT": "8080"}, 8080, "FC_SERVER_PORT"},
		{map[string]string{"FC_CUSTOM_LISTEN_PORT": "7000"}, 7000, "FC_CUSTOM_LISTEN_PORT"},
		{map[string]string{"FC_CUSTOM_LISTEN_PORT": "7000", "FC_SERVER_PORT": "8080"}, 7000, "FC_CUSTOM_LISTEN_PORT"},
		{map[string]string{"FC_CUSTOM_LISTEN_PORT": "", "FC_SERVER_PORT": "8080"}, 8080, "FC_SERVER_PORT"},
		{map[string]string{"FC_CUSTOM_LISTEN_PORT": "x", "FC_SERVER_PORT": "70000"}, 9000, "default"},
	}
	for _, tt := range tests {
		got, source := Port(platformtest.Lookup(tt.env))
		if got != tt.want || source != tt.wantSource {
			t.Errorf("Port(%v) = %d, %s; want %d, %s", tt.env, got, source, tt.want, tt.wantSource)
		}
	}
}

func TestPlatform_oxyPortOverridesFC(t *testing.T) {
	env := map[string]string{"FC_CUSTOM_LISTEN_PORT": "7000", "FC_SERVER_PORT": "8080", "OXY_PORT": "6000"}
	cfg, err := core.FromEnv(platformtest.Lookup(env), core.Options{Defaults: Platform(platformtest.Lookup(env)).Defaults, Environ: platformtest.Environ(env)})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 6000 {
		t.Errorf("Port = %d; want OXY_PORT's 6000", cfg.Port)
	}
}

func TestPlatform_portFromFC(t *testing.T) {
	env := map[string]string{"FC_CUSTOM_LISTEN_PORT": "7000"}
	cfg, err := core.FromEnv(platformtest.Lookup(env), core.Options{Defaults: Platform(platformtest.Lookup(env)).Defaults, Environ: platformtest.Environ(env)})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 7000 {
		t.Errorf("Port = %d; want FC_CUSTOM_LISTEN_PORT's 7000", cfg.Port)
	}
}

func TestPlatform_stripsFCHeaders(t *testing.T) {
	cfg, err := core.FromEnv(platformtest.Lookup(nil), core.Options{Defaults: Platform(platformtest.Lookup(nil)).Defaults})
	if err != nil {
		t.Fatal(err)
	}
	policy := core.NewHeaderPolicy(cfg)
	for name := range platformtest.FCHeaders() {
		if !policy.Stripped(name) {
			t.Errorf("%s is forwarded; want stripped", name)
		}
	}
}

func TestTrimDefaultDomainPrefix(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"/2016-08-15/proxy/svc/fn/v1/chat/completions", "/v1/chat/completions", true},
		{"/2016-08-15/proxy/svc.LATEST/fn/v1/models", "/v1/models", true},
		{"/2016-08-15/proxy/svc/fn", "/", true},
		{"/2016-08-15/proxy/svc/fn/", "/", true},
		{"/2016-08-15/proxy/svc/", "/2016-08-15/proxy/svc/", false},
		{"/2016-08-15/proxy//fn/v1", "/2016-08-15/proxy//fn/v1", false},
		{"/2016-08-15/proxy", "/2016-08-15/proxy", false},
		{"/2023-03-30/proxy/svc/fn/v1", "/2023-03-30/proxy/svc/fn/v1", false},
		{"/v1/2016-08-15/proxy/svc/fn/x", "/v1/2016-08-15/proxy/svc/fn/x", false},
		{"/v1/chat/completions", "/v1/chat/completions", false},
	}
	for _, tt := range tests {
		got, ok := TrimDefaultDomainPrefix(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("TrimDefaultDomainPrefix(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestWrap_defaultDomainPrefixAndHeaders(t *testing.T) {
	up := platformtest.NewUpstream(t)
	srv := newProxy(t, up)
	h := platformtest.FCHeaders()
	for k, v := range platformtest.ClientHeaders() {
		h[k] = v
	}
	do(t, http.MethodPost, srv.URL+"/2016-08-15/proxy/svc.LATEST/fn/v1/chat/completions?x=1", h, `{}`)
	last := up.Last(t)
	if last.URI != "/v1/chat/completions?x=1" {
		t.Errorf("upstream path = %s; want /v1/chat/completions?x=1", last.URI)
	}
	platformtest.CheckNoPlatformHeaders(t, last.Header, platformtest.FCHeaders())
}

func TestWrap_ignoresBasePathHeader(t *testing.T) {
	up := platformtest.NewUpstream(t)
	srv := newProxy(t, up)
	do(t, http.MethodGet, srv.URL+"/v1/models", http.Header{"X-Fc-Base-Path": {"/v1/models"}}, "")
	if got := up.Last(t).URI; got != "/v1/models" {
		t.Errorf("upstream path = %s; want /v1/models (x-fc-base-path is not trusted)", got)
	}
}

// requestLines returns the access-log lines of logs.
func requestLines(logs string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "msg=request") {
			out = append(out, l)
		}
	}
	return out
}

// An FC event invocation is answered locally and logged once, by the access
// log, with the refusal (the adapter writes no line of its own).
func TestWrap_eventInvocationAnsweredLocally(t *testing.T) {
	up := platformtest.NewUpstream(t)
	srv, logs := platformtest.NewProxyLogged(t, Platform(platformtest.Lookup(nil)), up, nil)
	h := platformtest.FCHeaders()
	h.Set("X-Fc-Control-Path", "/invoke")
	res, body := do(t, http.MethodPost, srv.URL+"/invoke", h, `{"key":"value"}`)
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("status = %d; want 400", res.StatusCode)
	}
	var e struct {
		Error struct{ Message, Type, Code string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != "fc_event_invocation_not_supported" ||
		e.Error.Type != "invalid_request_error" || !strings.Contains(e.Error.Message, "HTTP trigger") {
		t.Errorf("body = %s (%v); want an OpenAI-shaped error pointing to the HTTP trigger", body, err)
	}
	if n := len(up.Seen()); n != 0 {
		t.Errorf("upstream received %d requests; want the event call never forwarded", n)
	}
	srv.Close() // waits for the handler, and so for its log line
	if lines := requestLines(logs.String()); len(lines) != 1 || !strings.Contains(lines[0], "status=400") ||
		!strings.Contains(lines[0], "rejected=fc_event_invocation_not_supported") {
		t.Errorf("request log lines %q; want one, status=400 rejected=fc_event_invocation_not_supported", lines)
	}
}

func TestWrap_lifecycleHooksAnsweredLocally(t *testing.T) {
	up := platformtest.NewUpstream(t)
	srv, logs := platformtest.NewProxyLogged(t, Platform(platformtest.Lookup(nil)), up, nil)
	for _, hook := range []string{"/initialize", "/pre-freeze", "/pre-stop"} {
		method := http.MethodGet
		if hook == "/initialize" {
			method = http.MethodPost
		}
		res, _ := do(t, method, srv.URL+hook, http.Header{"X-Fc-Control-Path": {hook}}, "")
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: status = %d; want 200", hook, res.StatusCode)
		}
	}
	if n := len(up.Seen()); n != 0 {
		t.Errorf("upstream received %d requests; want lifecycle hooks never forwarded", n)
	}
	srv.Close()
	lines := requestLines(logs.String())
	for i, hook := range []string{"/initialize", "/pre-freeze", "/pre-stop"} {
		if i >= len(lines) || !strings.Contains(lines[i], "status=200") || !strings.Contains(lines[i], "fc_lifecycle_hook="+hook) {
			t.Errorf("request log lines %q; want one per hook, status=200 fc_lifecycle_hook=%s", lines, hook)
		}
	}
}

func TestWrap_streamsSSE(t *testing.T) {
	up := platformtest.NewUpstream(t)
	srv := newProxy(t, up)
	platformtest.CheckSSE(t, up, srv.URL+"/2016-08-15/proxy/svc/fn/v1/chat/completions", platformtest.FCHeaders())
	if got := up.Last(t).URI; got != "/v1/chat/completions" {
		t.Errorf("upstream path = %s; want /v1/chat/completions", got)
	}
}

func FuzzTrimDefaultDomainPrefix(f *testing.F) {
	for _, s := range []string{"/2016-08-15/proxy/svc/fn/v1/models", "/2016-08-15/proxy/a/b", "/2016-08-15/proxy//x", "/v1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, ok := TrimDefaultDomainPrefix(p)
		if !ok {
			if got != p {
				t.Fatalf("TrimDefaultDomainPrefix(%q) = %q without a match; want the input unchanged", p, got)
			}
			return
		}
		if !strings.HasPrefix(p, "/2016-08-15/proxy/") || !strings.HasPrefix(got, "/") ||
			!strings.HasSuffix(p, strings.TrimPrefix(got, "/")) || len(got) >= len(p) {
			t.Fatalf("TrimDefaultDomainPrefix(%q) = %q; want a shorter path that p ends with", p, got)
		}
	})
}

// FC vouches for no client address, so OXY_ALLOW_CIDRS is refused at startup
// with a message that names it and the alternative.
func TestPlatform_refusesAllowCIDRs(t *testing.T) {
	port := strconv.Itoa(testkit.FreePort(t))
	env := map[string]string{"OXY_ALLOW_CIDRS": "203.0.113.0/24", "OXY_HOST": "127.0.0.1", "OXY_PORT": port}
	// Should the check be missing, Run serves until the deadline and returns nil.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := start.Run(ctx, Platform(platformtest.Lookup(env)), nil, platformtest.Lookup(env), platformtest.Environ(env), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "OXY_ALLOW_CIDRS: not supported on Aliyun FC") ||
		!strings.Contains(err.Error(), "OXY_AUTH_KEYS") {
		t.Errorf("Run = %v; want OXY_ALLOW_CIDRS refused, pointing to OXY_AUTH_KEYS", err)
	}
	if err := Check(core.Config{}); err != nil {
		t.Errorf("Check without OXY_ALLOW_CIDRS = %v; want nil", err)
	}
}

// Even with the startup check bypassed, the FC adapter never takes the
// client's address from a header: a forged x-fc-client-ip or X-Forwarded-For
// does not get a request past the allow-list.
func TestWrap_forgedAddressHeadersIgnored(t *testing.T) {
	up := platformtest.NewUpstream(t)
	env := map[string]string{"OXY_TARGET": up.URL, "OXY_ALLOW_CIDRS": "203.0.113.0/24"}
	cfg, err := core.FromEnv(platformtest.Lookup(env), core.Options{Defaults: Platform(platformtest.Lookup(env)).Defaults})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(Wrap(cfg, logger, core.New(cfg, logger, nil)))
	defer srv.Close()
	h := platformtest.FCHeaders()
	h.Set("X-Fc-Client-Ip", "203.0.113.7")
	h.Set("X-Forwarded-For", "203.0.113.7")
	h.Set("X-Real-Ip", "203.0.113.7")
	res, _ := do(t, http.MethodGet, srv.URL+"/v1/models", h, "")
	if res.StatusCode != http.StatusForbidden || len(up.Seen()) != 0 {
		t.Errorf("status %d, upstream got %d requests; want 403 and none", res.StatusCode, len(up.Seen()))
	}
}
