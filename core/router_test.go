package core

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// routeUpstreams starts one recording mock upstream per name, on 127.0.0.1.
func routeUpstreams(t *testing.T, names ...string) map[string]chan seen {
	t.Helper()
	got := map[string]chan seen{}
	for _, n := range names {
		got[n] = make(chan seen, 16)
	}
	return got
}

func startRouteUpstream(t *testing.T, got chan seen) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(recordingUpstream(got, 200, http.Header{"Content-Type": {"application/json"}}, []byte(`{}`)))
	t.Cleanup(up.Close)
	return up
}

// onlyOne returns the one request that upstream name received, and fails if
// any other upstream received one.
func onlyOne(t *testing.T, got map[string]chan seen, name, what string) seen {
	t.Helper()
	var s seen
	for n, ch := range got {
		select {
		case r := <-ch:
			if n != name {
				t.Errorf("%s: upstream %s got %s; want only %s", what, n, r.RequestURI, name)
			}
			s = r
		default:
			if n == name {
				t.Errorf("%s: upstream %s got nothing", what, n)
			}
		}
	}
	return s
}

// TestRouter_pathsGoToTheirRoute drives raw request lines through a proxy
// with two routes and a default target, each with or without a base path:
// the route prefix is removed once, and every other byte of the path and the
// query arrives as sent.
func TestRouter_pathsGoToTheirRoute(t *testing.T) {
	got := routeUpstreams(t, "default", "openai", "anthropic")
	def := startRouteUpstream(t, got["default"])
	oai := startRouteUpstream(t, got["openai"])
	ant := startRouteUpstream(t, got["anthropic"])
	p := newTestProxyTo(t, def, def.URL+"/prefix", map[string]string{
		"OXY_ROUTES": "openai=" + oai.URL + "/base/, anthropic=" + ant.URL,
	})
	for _, tc := range []struct{ target, route, want string }{
		{"/openai/v1/chat/completions", "openai", "/base/v1/chat/completions"},
		{"/openai/v1/files/a%2Fb/content?x=1;y=%zz&z=%20+", "openai", "/base/v1/files/a%2Fb/content?x=1;y=%zz&z=%20+"},
		{"/openai/v1/files/\xe4\xbd\xa0/raw", "openai", "/base/v1/files/\xe4\xbd\xa0/raw"},
		{"/openai", "openai", "/base"},
		{"/openai/", "openai", "/base/"},
		{"/openai?a=1", "openai", "/base?a=1"},
		{"/anthropic/v1/messages?beta=true", "anthropic", "/v1/messages?beta=true"},
		{"/anthropic", "anthropic", "/"},
		{"/anthropic/openai/v1/x", "anthropic", "/openai/v1/x"}, // the prefix is removed once
		{"/anthropic//v1", "anthropic", "//v1"},
		{"/v1/models", "default", "/prefix/v1/models"},
		{"/openaix/v1/models", "default", "/prefix/openaix/v1/models"},
		{"/OpenAI/v1/models", "default", "/prefix/OpenAI/v1/models"},
		{"/%6Fpenai/v1/models", "default", "/prefix/%6Fpenai/v1/models"},
		{"/", "default", "/prefix/"},
		// Absolute-form targets are routed by their path, and still reach
		// only the configured upstreams.
		{"http://evil.example/anthropic/v1/messages?q=1", "anthropic", "/v1/messages?q=1"},
		{"http://evil.example/v1/models", "default", "/prefix/v1/models"},
	} {
		res := rawRequest(t, p.URL, "GET "+tc.target+" HTTP/1.1\r\nHost: proxy.example\r\n\r\n")
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET %q: status %d", tc.target, res.StatusCode)
		}
		s := onlyOne(t, got, tc.route, tc.target)
		if s.RequestURI != tc.want {
			t.Errorf("GET %q: %s got %q; want %q", tc.target, tc.route, s.RequestURI, tc.want)
		}
		if want := map[string]string{"default": def.URL, "openai": oai.URL, "anthropic": ant.URL}[tc.route]; "http://"+s.Host != want {
			t.Errorf("GET %q: Host %q; want %s", tc.target, s.Host, want)
		}
	}
}

// TestRouter_accessLogNamesTheRoute: every line names its route, the default
// one included, and keeps the client's path (with its prefix).
func TestRouter_accessLogNamesTheRoute(t *testing.T) {
	got := routeUpstreams(t, "default", "gemini")
	def := startRouteUpstream(t, got["default"])
	gem := startRouteUpstream(t, got["gemini"])
	p := newTestProxyTo(t, def, def.URL, map[string]string{"OXY_ROUTES": "gemini=" + gem.URL})
	for _, tc := range []struct{ path, route string }{{"/gemini/v1beta/models/m:generateContent", "gemini"}, {"/v1/models", "default"}} {
		res, err := http.Get(p.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		onlyOne(t, got, tc.route, tc.path)
	}
	lines := p.logLines()
	if len(lines) != 2 {
		t.Fatalf("%d log lines; want 2:\n%s", len(lines), p.Log)
	}
	for i, want := range []struct{ path, route string }{
		{"/gemini/v1beta/models/m:generateContent", "gemini"}, {"/v1/models", "default"},
	} {
		var l struct{ Path, Route string }
		if err := json.Unmarshal([]byte(lines[i]), &l); err != nil {
			t.Fatal(err)
		}
		if l.Path != want.path || l.Route != want.route {
			t.Errorf("log line %d: path %q route %q; want %q %q", i, l.Path, l.Route, want.path, want.route)
		}
	}
}

// Client credentials planted in every location a client can use.
const plantedClientKey = "sk-client-PLANTED-0123456789"

func plantEveryCredential(r *http.Request) {
	r.Header.Set("Authorization", "Bearer "+plantedClientKey)
	r.Header.Set("Api-Key", plantedClientKey)
	r.Header.Set("X-Api-Key", plantedClientKey)
	r.Header.Set("X-Goog-Api-Key", plantedClientKey)
	q := r.URL.RawQuery
	r.URL.RawQuery = joinQuery(q, "key="+plantedClientKey)
}

// TestRouteKeys_injectedTheVendorsWay plants the client's key in every
// location and checks that each route's upstream sees only its own real key,
// in its own header, and that the rest of the query arrives byte for byte.
func TestRouteKeys_injectedTheVendorsWay(t *testing.T) {
	names := []string{"default", "openai", "anthropic", "gemini", "azure"}
	got := routeUpstreams(t, names...)
	ups := map[string]*httptest.Server{}
	for _, n := range names {
		ups[n] = startRouteUpstream(t, got[n])
	}
	env := map[string]string{
		"OXY_ALLOW_CIDRS": "127.0.0.1/32",
		"OXY_ROUTES": "openai=" + ups["openai"].URL + ",anthropic=" + ups["anthropic"].URL +
			",gemini=" + ups["gemini"].URL + ",azure=" + ups["azure"].URL,
		"OXY_UPSTREAM_API_KEY":           "sk-default-real",
		"OXY_UPSTREAM_API_KEY_OPENAI":    "sk-openai-real",
		"OXY_UPSTREAM_API_KEY_ANTHROPIC": "sk-ant-real",
		"OXY_UPSTREAM_API_KEY_GEMINI":    "AIza-gemini-real",
		"OXY_UPSTREAM_API_KEY_AZURE":     "azure-real",
	}
	p := newTestProxyTo(t, ups["default"], ups["default"].URL, env)
	// A route given by URL only takes Bearer (the mock's host is not an Azure
	// one); the presets' own schemes are what this test is about.
	for _, tc := range []struct {
		route, path, header, value string
	}{
		{"default", "/v1/models?alt=sse;x=%zz", "Authorization", "Bearer sk-default-real"},
		{"openai", "/openai/v1/models?alt=sse;x=%zz", "Authorization", "Bearer sk-openai-real"},
		{"anthropic", "/anthropic/v1/messages?alt=sse;x=%zz", "X-Api-Key", "sk-ant-real"},
		{"gemini", "/gemini/v1beta/models/m:streamGenerateContent?alt=sse;x=%zz", "X-Goog-Api-Key", "AIza-gemini-real"},
		{"azure", "/azure/openai/v1/models?alt=sse;x=%zz", "Authorization", "Bearer azure-real"},
	} {
		req, _ := http.NewRequest("GET", p.URL+tc.path, nil)
		plantEveryCredential(req)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		s := onlyOne(t, got, tc.route, tc.route)
		if strings.Contains(s.RequestURI, plantedClientKey) || strings.Contains(s.RequestURI, "key=") {
			t.Errorf("%s: upstream got the client's key in %q", tc.route, s.RequestURI)
		}
		if !strings.HasSuffix(s.RequestURI, "?alt=sse;x=%zz") {
			t.Errorf("%s: query became %q; want ?alt=sse;x=%%zz", tc.route, s.RequestURI)
		}
		checkOnlyRealKey(t, s.Header, tc.header, tc.value)
		for name, values := range s.Header {
			for _, v := range values {
				if strings.Contains(v, plantedClientKey) {
					t.Errorf("%s: upstream got the client's key in %s", tc.route, name)
				}
			}
		}
	}
}

// TestRouteKeys_azurePresetlessRoute: a route to an Azure OpenAI host takes
// the key in api-key, as OXY_TARGET does.
func TestRouteKeys_azurePresetlessRoute(t *testing.T) {
	c, err := FromEnv(testkit.Lookup(map[string]string{"OXY_ROUTES": "azure=https://res.openai.azure.com"}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := httptest.NewRequest("GET", "/openai/v1/models?key="+plantedClientKey, nil)
	plantEveryCredential(out)
	removeClientCredentials(out)
	c.Routes[0].Credential.Apply(out, "azure-real")
	checkOnlyRealKey(t, out.Header, "Api-Key", "azure-real")
	if out.URL.RawQuery != "" {
		t.Errorf("query %q; want the client's key parameters gone", out.URL.RawQuery)
	}
}

// TestRouteKeys_withoutKeyPassThrough: a route without a real key passes the
// client's own credentials through unchanged, wherever they were, while a
// route with one on the same proxy still replaces them.
func TestRouteKeys_withoutKeyPassThrough(t *testing.T) {
	got := routeUpstreams(t, "default", "gemini", "anthropic")
	def := startRouteUpstream(t, got["default"])
	gem := startRouteUpstream(t, got["gemini"])
	ant := startRouteUpstream(t, got["anthropic"])
	p := newTestProxyTo(t, def, def.URL, map[string]string{
		"OXY_ALLOW_CIDRS":                "127.0.0.1/32",
		"OXY_ROUTES":                     "gemini=" + gem.URL + ",anthropic=" + ant.URL,
		"OXY_UPSTREAM_API_KEY_ANTHROPIC": "sk-ant-real",
	})
	req, _ := http.NewRequest("POST", p.URL+"/gemini/v1beta/models/m:generateContent?alt=sse", strings.NewReader("{}"))
	plantEveryCredential(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	s := onlyOne(t, got, "gemini", "gemini")
	if s.RequestURI != "/v1beta/models/m:generateContent?alt=sse&key="+plantedClientKey {
		t.Errorf("gemini got %q; want the client's query unchanged", s.RequestURI)
	}
	for _, h := range []string{"Api-Key", "X-Api-Key", "X-Goog-Api-Key"} {
		if s.Header.Get(h) != plantedClientKey {
			t.Errorf("gemini got %s %q; want the client's own", h, s.Header.Get(h))
		}
	}
	req, _ = http.NewRequest("POST", p.URL+"/anthropic/v1/messages", strings.NewReader("{}"))
	plantEveryCredential(req)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	s = onlyOne(t, got, "anthropic", "anthropic")
	checkOnlyRealKey(t, s.Header, "X-Api-Key", "sk-ant-real")
	if s.RequestURI != "/v1/messages" {
		t.Errorf("anthropic got %q; want the key parameter removed", s.RequestURI)
	}
}

// TestProxyKeys_guardEveryRoute: with OXY_AUTH_KEYS every route refuses a
// request without a proxy key before any upstream is called, and accepts the
// key as a key query parameter, which never reaches the upstream or the log.
func TestProxyKeys_guardEveryRoute(t *testing.T) {
	got := routeUpstreams(t, "default", "gemini", "anthropic")
	def := startRouteUpstream(t, got["default"])
	gem := startRouteUpstream(t, got["gemini"])
	ant := startRouteUpstream(t, got["anthropic"])
	env := keyedEnv()
	env["OXY_ROUTES"] = "gemini=" + gem.URL + ",anthropic=" + ant.URL
	env["OXY_UPSTREAM_API_KEY_GEMINI"] = "AIza-gemini-real"
	env["OXY_UPSTREAM_API_KEY_ANTHROPIC"] = "sk-ant-real"
	p := newTestProxyTo(t, def, def.URL, env)
	for _, path := range []string{"/v1/models", "/gemini/v1beta/models", "/anthropic/v1/models", "/gemini/v1beta/models?key=" + plantedClientKey} {
		res, err := http.Get(p.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a proxy key: %d; want 401", path, res.StatusCode)
		}
	}
	onlyOne(t, got, "none", "requests without a proxy key")

	res, err := http.Get(p.URL + "/gemini/v1beta/models/m:streamGenerateContent?alt=sse&key=" + testProxyKey + "&x=1")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("proxy key in ?key=: status %d; want 200", res.StatusCode)
	}
	s := onlyOne(t, got, "gemini", "gemini")
	if s.RequestURI != "/v1beta/models/m:streamGenerateContent?alt=sse&x=1" {
		t.Errorf("gemini got %q; want the key parameter removed and the rest kept", s.RequestURI)
	}
	checkOnlyRealKey(t, s.Header, "X-Goog-Api-Key", "AIza-gemini-real")
	logs := p.Log.String()
	if !strings.Contains(logs, `"route":"gemini"`) || !strings.Contains(logs, `"caller":"alice"`) {
		t.Errorf("log does not name route and caller:\n%s", logs)
	}
	for _, leak := range []string{testProxyKey, plantedClientKey, "AIza-gemini-real", "sk-ant-real", "key="} {
		if strings.Contains(logs, leak) {
			t.Errorf("log contains %q:\n%s", leak, logs)
		}
	}
}

// TestRouter_dotSegmentsJudgedPerRoute: a route's base path is as safe as
// OXY_TARGET's. Dot segments are judged on the path left after the route
// prefix, so /openai/../x (which would climb out of the route's base path
// once resolved) is refused, while dots that stay inside pass byte for byte.
func TestRouter_dotSegmentsJudgedPerRoute(t *testing.T) {
	got := routeUpstreams(t, "default", "openai")
	def := startRouteUpstream(t, got["default"])
	oai := startRouteUpstream(t, got["openai"])
	p := newTestProxyTo(t, def, def.URL+"/prefix", map[string]string{"OXY_ROUTES": "openai=" + oai.URL + "/base"})
	for _, target := range []string{"/openai/../admin", "/openai/%2e%2e/admin", "/openai/v1/../../admin", "/openai/..", "/openai/.%2E/x"} {
		res := rawRequest(t, p.URL, "GET "+target+" HTTP/1.1\r\nHost: proxy.example\r\n\r\n")
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s: %d; want 400", target, res.StatusCode)
		}
		onlyOne(t, got, "none", target)
	}
	for _, tc := range []struct{ target, route, want string }{
		{"/openai/v1/x/../models", "openai", "/base/v1/x/../models"},
		{"/v1/../openai/x", "default", "/prefix/v1/../openai/x"},
	} {
		res := rawRequest(t, p.URL, "GET "+tc.target+" HTTP/1.1\r\nHost: proxy.example\r\n\r\n")
		res.Body.Close()
		if s := onlyOne(t, got, tc.route, tc.target); s.RequestURI != tc.want {
			t.Errorf("GET %s: %s got %q; want %q", tc.target, tc.route, s.RequestURI, tc.want)
		}
	}
}
