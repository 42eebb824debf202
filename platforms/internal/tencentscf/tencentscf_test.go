package tencentscf

import (
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

// newProxy returns the SCF proxy (core handler inside Wrap) in front of up.
func newProxy(t *testing.T, up *platformtest.Upstream, env map[string]string) *httptest.Server {
	return platformtest.NewProxy(t, Platform(), up, env)
}

func get(t *testing.T, url string, h http.Header) *http.Response {
	t.Helper()
	res, _ := platformtest.Do(t, http.MethodGet, url, h, "")
	return res
}

func TestPlatform_presets(t *testing.T) {
	env := map[string]string{"OXY_HOP_HEADER_PREFIX": "X-Custom-"}
	cfg, err := core.FromEnv(platformtest.Lookup(env), core.Options{Defaults: Platform().Defaults, Environ: platformtest.Environ(env)})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 9000 {
		t.Errorf("Port = %d; want 9000 (SCF only reaches web functions there)", cfg.Port)
	}
	if cfg.Extra[StripPathPrefixSetting] != "" {
		t.Errorf("%s = %q; want off by default", StripPathPrefixSetting, cfg.Extra[StripPathPrefixSetting])
	}
	policy := core.NewHeaderPolicy(cfg)
	for name := range platformtest.SCFHeaders() {
		if !policy.Stripped(name) {
			t.Errorf("%s is forwarded; want stripped", name)
		}
	}
	if !policy.Stripped("X-Custom-Thing") {
		t.Error("the user's OXY_HOP_HEADER_PREFIX replaced the preset instead of adding to it")
	}
}

func TestPlatform_portOverride(t *testing.T) {
	env := map[string]string{"OXY_PORT": "8080"}
	cfg, err := core.FromEnv(platformtest.Lookup(env), core.Options{Defaults: Platform().Defaults})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 8080 {
		t.Errorf("Port = %d; want OXY_PORT's 8080", cfg.Port)
	}
}

func TestStripPathPrefix_invalid(t *testing.T) {
	for _, v := range []string{"release", "/", "//", "/release?x", "/rel ease"} {
		env := map[string]string{StripPathPrefixSetting: v}
		_, err := core.FromEnv(platformtest.Lookup(env), core.Options{Defaults: Platform().Defaults})
		if err == nil || !strings.Contains(err.Error(), StripPathPrefixSetting) {
			t.Errorf("%s=%q: err = %v; want an error naming the setting", StripPathPrefixSetting, v, err)
		}
	}
}

func TestWrap_stripPathPrefix(t *testing.T) {
	tests := []struct {
		prefix, path, want string
	}{
		{"/release", "/release/v1/chat/completions?api-version=1", "/v1/chat/completions?api-version=1"},
		{"/release/", "/release/v1/models", "/v1/models"},
		{"/release", "/v1/models", "/v1/models"},
		{"/release", "/releases/v1/models", "/releases/v1/models"},
		{"", "/release/v1/models", "/release/v1/models"},
		{"/test", "/test/v1/files/a%2Fb", "/v1/files/a%2Fb"},
	}
	for _, tt := range tests {
		up := platformtest.NewUpstream(t)
		srv := newProxy(t, up, map[string]string{StripPathPrefixSetting: tt.prefix})
		get(t, srv.URL+tt.path, nil)
		if got := up.Last(t).URI; got != tt.want {
			t.Errorf("prefix %q: %s reached the upstream as %s; want %s", tt.prefix, tt.path, got, tt.want)
		}
	}
}

func TestWrap_stripsPlatformHeaders(t *testing.T) {
	up := platformtest.NewUpstream(t)
	srv := newProxy(t, up, nil)
	h := platformtest.SCFHeaders()
	for k, v := range platformtest.ClientHeaders() {
		h[k] = v
	}
	get(t, srv.URL+"/v1/models", h)
	platformtest.CheckNoPlatformHeaders(t, up.Last(t).Header, platformtest.SCFHeaders())
}

func TestWrap_dropsResponseHeadersClientsNeverNeed(t *testing.T) {
	up := platformtest.NewUpstream(t)
	up.ExtraResponseHeaders = http.Header{
		"Set-Cookie": {
			"__cf_bm=" + strings.Repeat("a", 200) + "; path=/; expires=Thu, 26-Nov-26 10:30:00 GMT; domain=.api.openai.com; HttpOnly; Secure; SameSite=None",
			"_cfuvid=" + strings.Repeat("b", 60) + "; path=/; domain=.api.openai.com; HttpOnly; Secure; SameSite=None",
		},
		"Report-To":                 {`{"endpoints":[{"url":"https://a.nel.cloudflare.com/report"}]}`},
		"Nel":                       {`{"success_fraction":0,"max_age":604800}`},
		"Strict-Transport-Security": {"max-age=31536000; includeSubDomains; preload"},
		"Openai-Processing-Ms":      {"123"},
		"X-Ratelimit-Remaining":     {"99"},
		"Cf-Ray":                    {"8f0000000000abcd-HKG"},
	}
	srv := newProxy(t, up, nil)
	res := get(t, srv.URL+"/v1/chat/completions", nil)
	for _, name := range []string{"Set-Cookie", "Report-To", "Nel", "Strict-Transport-Security"} {
		if v := res.Header.Values(name); len(v) > 0 {
			t.Errorf("client received %s: %q; want it dropped", name, v)
		}
	}
	for _, name := range []string{"Openai-Processing-Ms", "X-Ratelimit-Remaining", "X-Request-Id", "Content-Type", "Cf-Ray"} {
		if res.Header.Get(name) == "" {
			t.Errorf("client did not receive %s; want it kept (the response fits the budget)", name)
		}
	}
}

func TestWrap_trimsHeadersToBudget(t *testing.T) {
	up := platformtest.NewUpstream(t)
	up.ExtraResponseHeaders = http.Header{
		"X-Ratelimit-Limit-Requests": {"10000"},
		"Openai-Version":             {"2020-10-01"},
		"Www-Authenticate":           {"Bearer"},
	}
	for i := range 8 {
		up.ExtraResponseHeaders["X-Vendor-Debug-"+string(rune('A'+i))] = []string{strings.Repeat("x", 500)}
	}
	srv := newProxy(t, up, nil)
	res := get(t, srv.URL+"/v1/chat/completions", nil)
	if size := headerSize(res.Header); size > 4096 {
		t.Errorf("response headers total %d bytes; want at most SCF's 4096", size)
	}
	for _, name := range []string{"X-Ratelimit-Limit-Requests", "Openai-Version", "Www-Authenticate", "X-Request-Id", "Content-Type"} {
		if res.Header.Get(name) == "" {
			t.Errorf("%s was dropped; want the headers clients read kept", name)
		}
	}
	var left []string
	for name := range res.Header {
		if strings.HasPrefix(name, "X-Vendor-Debug-") {
			left = append(left, name)
		}
	}
	if len(left) == 8 {
		t.Error("no optional header was dropped; want the largest ones dropped to fit")
	}
}

func TestTrim_keepsEssentialHeadersEvenOverBudget(t *testing.T) {
	h := http.Header{
		"Content-Type":   {"application/json"},
		"Openai-Huge":    {strings.Repeat("o", 4000)},
		"X-Other":        {"small"},
		"X-Another-Huge": {strings.Repeat("z", 1000)},
	}
	r := httptest.NewRequest(http.MethodGet, "/v1/models", nil)
	newHeaderTrimmer(slog.New(slog.DiscardHandler)).trim(r, h)
	got := slices.Sorted(maps.Keys(h))
	if want := []string{"Content-Type", "Openai-Huge"}; !slices.Equal(got, want) {
		t.Errorf("headers left = %q; want %q (every optional one dropped, essential ones kept)", got, want)
	}
}

func TestWrap_streamsSSE(t *testing.T) {
	up := platformtest.NewUpstream(t)
	srv := newProxy(t, up, map[string]string{StripPathPrefixSetting: "/release"})
	platformtest.CheckSSE(t, up, srv.URL+"/release/v1/chat/completions", platformtest.SCFHeaders())
	if got := up.Last(t).URI; got != "/v1/chat/completions" {
		t.Errorf("upstream path = %s; want /v1/chat/completions", got)
	}
}

func TestTrimmingWriter_flushSendsTrimmedHeaders(t *testing.T) {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	w := &trimmingWriter{ResponseWriter: rec, trim: newHeaderTrimmer(slog.New(slog.DiscardHandler)), req: r}
	w.Header().Set("Set-Cookie", "a=b")
	w.Header().Set("Content-Type", "text/event-stream")
	http.NewResponseController(w).Flush()
	if !rec.Flushed {
		t.Error("Flush did not reach the server's writer")
	}
	if rec.Result().Header.Get("Set-Cookie") != "" {
		t.Error("Flush before WriteHeader sent Set-Cookie; want headers trimmed first")
	}
}

// The allow-list judges the address SCF gives in X-Scf-Remote-Addr. The
// socket peer (here 127.0.0.1, on SCF the platform's own proxy) and the
// client-controlled X-Forwarded-For / X-Real-Ip never decide.
func TestWrap_allowListUsesSCFRemoteAddr(t *testing.T) {
	tests := []struct {
		name   string
		allow  string
		header http.Header
		status int
	}{
		{"allowed", "203.0.113.0/24",
			http.Header{"X-Scf-Remote-Addr": {"203.0.113.7"}}, http.StatusOK},
		{"refused", "203.0.113.0/24",
			http.Header{"X-Scf-Remote-Addr": {"198.51.100.1"}}, http.StatusForbidden},
		{"forged X-Forwarded-For", "203.0.113.0/24",
			http.Header{"X-Scf-Remote-Addr": {"198.51.100.1"}, "X-Forwarded-For": {"203.0.113.7"}, "X-Real-Ip": {"203.0.113.7"}},
			http.StatusForbidden},
		{"socket peer not trusted", "127.0.0.1",
			http.Header{"X-Scf-Remote-Addr": {"198.51.100.1"}}, http.StatusForbidden},
		{"no SCF address fails closed", "127.0.0.1,203.0.113.0/24",
			http.Header{"X-Forwarded-For": {"203.0.113.7"}}, http.StatusForbidden},
		{"repeated SCF address fails closed", "203.0.113.0/24",
			http.Header{"X-Scf-Remote-Addr": {"203.0.113.7", "198.51.100.1"}}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := platformtest.NewUpstream(t)
			srv := newProxy(t, up, map[string]string{"OXY_ALLOW_CIDRS": tt.allow})
			res := get(t, srv.URL+"/v1/models", tt.header)
			if res.StatusCode != tt.status {
				t.Errorf("status = %d; want %d", res.StatusCode, tt.status)
			}
			if n := len(up.Seen()); tt.status != http.StatusOK && n != 0 {
				t.Errorf("upstream got %d requests; want none for a refused address", n)
			}
		})
	}
}

// OXY_FORWARD_CLIENT_IP sends SCF's client address, not the socket peer or
// what the client put in X-Forwarded-For.
func TestWrap_forwardClientIPUsesSCFRemoteAddr(t *testing.T) {
	up := platformtest.NewUpstream(t)
	srv := newProxy(t, up, map[string]string{"OXY_FORWARD_CLIENT_IP": "true"})
	get(t, srv.URL+"/v1/models", http.Header{"X-Scf-Remote-Addr": {"203.0.113.7"}, "X-Forwarded-For": {"6.6.6.6"}})
	if got := up.Last(t).Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "203.0.113.7" {
		t.Errorf("upstream X-Forwarded-For = %q; want [203.0.113.7]", got)
	}
	if got := up.Last(t).Header.Get("X-Scf-Remote-Addr"); got != "" {
		t.Errorf("upstream received X-Scf-Remote-Addr %q; want it stripped", got)
	}
}

// Without an address SCF vouches for, OXY_FORWARD_CLIENT_IP names nobody: the
// socket peer is SCF's own proxy, and the client's X-Forwarded-For is its own
// claim.
func TestWrap_forwardClientIPWithoutSCFRemoteAddr(t *testing.T) {
	up := platformtest.NewUpstream(t)
	srv := newProxy(t, up, map[string]string{"OXY_FORWARD_CLIENT_IP": "true"})
	get(t, srv.URL+"/v1/models", http.Header{"X-Forwarded-For": {"6.6.6.6"}})
	if got, ok := up.Last(t).Header["X-Forwarded-For"]; ok {
		t.Errorf("upstream X-Forwarded-For = %q; want none", got)
	}
}
