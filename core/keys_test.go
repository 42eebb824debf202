package core

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

func TestParseProxyKeys(t *testing.T) {
	long := "0123456789abcdef"
	for _, tc := range []struct {
		name, in string
		want     []ProxyKey
		problems []string
	}{
		{name: "empty", in: ""},
		{name: "bare and named", in: " k1-" + long + " , bob:k2-" + long + ",,",
			want: []ProxyKey{{Key: Secret("k1-" + long)}, {Name: "bob", Key: Secret("k2-" + long)}}},
		{name: "every allowed character", in: "a.b_c@d-e:AZaz09-._~+/=" + long,
			want: []ProxyKey{{Name: "a.b_c@d-e", Key: Secret("AZaz09-._~+/=" + long)}}},
		{name: "too short", in: "shortkey", problems: []string{"entry 1: key shorter than 16 characters"}},
		{name: "bad character", in: "x" + long + ";", problems: []string{"entry 1: key has a character outside"}},
		{name: "colon in unnamed key", in: "abc:de:" + long, problems: []string{"entry 1: key has a character outside"}},
		{name: "bad name", in: "b o b:" + long, problems: []string{"entry 1: the name before ':' must be"}},
		{name: "empty name", in: ":" + long, problems: []string{"entry 1: the name before ':'"}},
		{name: "duplicate", in: "a:" + long + ",b:" + long, want: []ProxyKey{{Name: "a", Key: Secret(long)}},
			problems: []string{"entry 2: same key as entry 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, problems := parseProxyKeys(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("keys = %#v; want %#v", got, tc.want)
			}
			if len(problems) != len(tc.problems) {
				t.Fatalf("problems = %q; want %q", problems, tc.problems)
			}
			for i, p := range problems {
				if !strings.HasPrefix(p, tc.problems[i]) {
					t.Errorf("problem %q; want prefix %q", p, tc.problems[i])
				}
				if strings.Contains(p, long) || strings.Contains(p, "shortkey") {
					t.Errorf("problem %q shows the key", p)
				}
			}
		})
	}
}

func TestFromEnv_accessSettings(t *testing.T) {
	env := map[string]string{
		"OXY_TARGET":       "https://myres.openai.azure.com/openai",
		"OXY_AUTH_KEYS":    "alice:" + testProxyKey + "," + testProxyKey2,
		"OXY_CORS_ORIGINS": "https://App.example.com/, http://localhost:5173",
		"OXY_HEALTH_PATH":  "/_proxy/health",
		"OXY_ALLOW_CIDRS":  "10.0.0.0/8, 203.0.113.7, 2001:db8::/32, 192.168.1.9/24",
	}
	env["OXY_UPSTREAM_API_KEY"] = testRealKey
	c, err := FromEnv(testkit.Lookup(env), Options{Environ: testkit.Environ(env)})
	if err != nil {
		t.Fatal(err)
	}
	if want := []ProxyKey{{Name: "alice", Key: testProxyKey}, {Key: testProxyKey2}}; !reflect.DeepEqual(c.AuthKeys, want) {
		t.Errorf("AuthKeys = %v; want %v", c.AuthKeys, want)
	}
	if fmt.Sprint(revealAll(c.UpstreamAPIKeys)) != "["+testRealKey+"]" || c.UpstreamAPIKeyHeader != "Api-Key" {
		t.Errorf("upstream key header = %q; want Api-Key for an Azure OpenAI target", c.UpstreamAPIKeyHeader)
	}
	if want := []string{"https://App.example.com", "http://localhost:5173"}; !reflect.DeepEqual(c.CORSOrigins, want) {
		t.Errorf("CORSOrigins = %q; want %q", c.CORSOrigins, want)
	}
	if c.HealthPath != "/_proxy/health" {
		t.Errorf("HealthPath = %q", c.HealthPath)
	}
	if got := fmt.Sprint(c.AllowCIDRs); got != "[10.0.0.0/8 203.0.113.7/32 2001:db8::/32 192.168.1.0/24]" {
		t.Errorf("AllowCIDRs = %s", got)
	}

	d, err := FromEnv(testkit.Lookup(nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.AuthKeys != nil || d.UpstreamAPIKeys != nil || d.UpstreamAPIKeyHeader != "" || d.CORSOrigins != nil || d.AllowCIDRs != nil || d.HealthPath != "/healthz" {
		t.Errorf("defaults = %+v; want everything off except the health route /healthz", d)
	}
}

// TestFromEnv_accessInvalid checks each refused combination, and that the
// secret settings' values never appear in the error.
func TestFromEnv_accessInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"auth keys without upstream key", map[string]string{"OXY_AUTH_KEYS": testProxyKey},
			"OXY_AUTH_KEYS: set without OXY_UPSTREAM_API_KEY"},
		{"upstream key open to anyone", map[string]string{"OXY_UPSTREAM_API_KEY": testRealKey},
			"OXY_UPSTREAM_API_KEY: set without OXY_AUTH_KEYS or OXY_ALLOW_CIDRS"},
		{"proxy key is the real key", map[string]string{"OXY_AUTH_KEYS": testRealKey, "OXY_UPSTREAM_API_KEY": testRealKey},
			"OXY_AUTH_KEYS: a proxy key is the upstream key itself"},
		{"short proxy key", map[string]string{"OXY_AUTH_KEYS": "bob:sk-short", "OXY_UPSTREAM_API_KEY": testRealKey},
			"OXY_AUTH_KEYS: entry 1: key shorter than 16 characters"},
		{"upstream key with a space", map[string]string{"OXY_UPSTREAM_API_KEY": "sk-real UPSTREAM-secret", "OXY_ALLOW_CIDRS": "127.0.0.1"},
			"OXY_UPSTREAM_API_KEY: must be printable ASCII without spaces"},
		{"key header without key", map[string]string{"OXY_UPSTREAM_API_KEY_HEADER": "api-key"},
			`OXY_UPSTREAM_API_KEY_HEADER="api-key": set without OXY_UPSTREAM_API_KEY`},
		{"key header not a name", map[string]string{"OXY_UPSTREAM_API_KEY_HEADER": "api key", "OXY_UPSTREAM_API_KEY": testRealKey, "OXY_ALLOW_CIDRS": "127.0.0.1"},
			`OXY_UPSTREAM_API_KEY_HEADER="api key": not a header name`},
		{"key header hop-by-hop", map[string]string{"OXY_UPSTREAM_API_KEY_HEADER": "connection", "OXY_UPSTREAM_API_KEY": testRealKey, "OXY_ALLOW_CIDRS": "127.0.0.1"},
			`OXY_UPSTREAM_API_KEY_HEADER="connection": cannot carry the key`},
		{"origin with path", map[string]string{"OXY_CORS_ORIGINS": "https://app.example.com/chat"},
			`OXY_CORS_ORIGINS="https://app.example.com/chat": an origin has no path`},
		{"origin without scheme", map[string]string{"OXY_CORS_ORIGINS": "app.example.com"},
			`OXY_CORS_ORIGINS="app.example.com": not an origin`},
		{"star and origins", map[string]string{"OXY_CORS_ORIGINS": "*,https://a.example"},
			`OXY_CORS_ORIGINS="*,https://a.example": * already allows every origin`},
		{"bad cidr", map[string]string{"OXY_ALLOW_CIDRS": "10.0.0.0/33"}, `OXY_ALLOW_CIDRS="10.0.0.0/33": not a CIDR`},
		{"bad ip", map[string]string{"OXY_ALLOW_CIDRS": "10.0.0.256"}, `OXY_ALLOW_CIDRS="10.0.0.256": not an IP address or CIDR`},
		{"host name", map[string]string{"OXY_ALLOW_CIDRS": "example.com"}, `OXY_ALLOW_CIDRS="example.com": not an IP address`},
		{"health path in the API", map[string]string{"OXY_HEALTH_PATH": "/v1/health"}, `OXY_HEALTH_PATH="/v1/health": would hide API paths`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromEnv(testkit.Lookup(tc.env), Options{Environ: testkit.Environ(tc.env)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %q", err, tc.want)
			}
			for _, secret := range []string{testRealKey, testProxyKey, "sk-short", "sk-real UPSTREAM-secret"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a key:\n%v", err)
				}
			}
		})
	}
}

// TestFromEnv_wrongGuardIsNotAlsoMissing: a real key whose guard
// (OXY_AUTH_KEYS or OXY_ALLOW_CIDRS) is set but wrong gets the guard's own
// problem only, not also "set without OXY_AUTH_KEYS or OXY_ALLOW_CIDRS",
// which would send the reader looking for a setting that is there.
func TestFromEnv_wrongGuardIsNotAlsoMissing(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"short proxy key", map[string]string{"OXY_AUTH_KEYS": "bob:sk-short", "OXY_UPSTREAM_API_KEY": testRealKey},
			"OXY_AUTH_KEYS: entry 1: key shorter than 16 characters"},
		{"bad cidr, route key", map[string]string{"OXY_ALLOW_CIDRS": "10.0.0.0/33", "OXY_UPSTREAM_API_KEY": testRealKey,
			"OXY_ROUTES": "openai", "OXY_UPSTREAM_API_KEY_OPENAI": testRealKey + "-openai"},
			`OXY_ALLOW_CIDRS="10.0.0.0/33": not a CIDR`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromEnv(testkit.Lookup(tc.env), Options{Environ: testkit.Environ(tc.env)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "set without OXY_AUTH_KEYS or OXY_ALLOW_CIDRS") {
				t.Errorf("err = %v; want only the guard's own problem, not the key called unguarded", err)
			}
		})
	}
}

func TestDefaultKeyHeader(t *testing.T) {
	for _, tc := range []struct{ target, want string }{
		{"https://api.openai.com", "Authorization"},
		{"https://myres.openai.azure.com", "Api-Key"},
		{"https://MyRes.OpenAI.Azure.com.:443/openai", "Api-Key"},
		{"https://myres.cognitiveservices.azure.com/openai", "Api-Key"},
		{"https://openai.azure.com.attacker.example", "Authorization"},
		{"https://notopenai.azure.com", "Authorization"},
		{"http://127.0.0.1:8080", "Authorization"},
	} {
		u, err := url.Parse(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		if got := defaultKeyHeader(u); got != tc.want {
			t.Errorf("defaultKeyHeader(%s) = %q; want %q", tc.target, got, tc.want)
		}
	}
}

// TestSecret_neverPrinted prints and logs a whole Config every way a
// developer might and checks that no key shows.
func TestSecret_neverPrinted(t *testing.T) {
	env := keyedEnv()
	c, err := FromEnv(testkit.Lookup(env), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		fmt.Fprintf(&out, verb+"\n", c)
		fmt.Fprintf(&out, verb+"\n", c.UpstreamAPIKeys)
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(j)
	slog.New(slog.NewTextHandler(&out, nil)).Info("cfg", "cfg", c, "key", c.UpstreamAPIKeys)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("cfg", "cfg", c, "key", c.UpstreamAPIKeys, "keys", c.AuthKeys)
	for _, secret := range []string{testRealKey, testProxyKey, testProxyKey2, fmt.Sprintf("%x", testRealKey)} {
		if strings.Contains(strings.ToLower(out.String()), strings.ToLower(secret)) {
			t.Fatalf("printed config shows a key:\n%s", out.String())
		}
	}
	if !strings.Contains(out.String(), "[redacted]") {
		t.Errorf("printed config lacks [redacted]:\n%s", out.String())
	}
}

// TestProxyKeys_everyLocation sends the proxy key, a wrong key and the real
// key itself in each place SDKs put keys: only the proxy key gets through,
// and a refused request never reaches the upstream.
func TestProxyKeys_everyLocation(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(h http.Header, key string)
	}{
		{"Authorization Bearer", func(h http.Header, k string) { h.Set("Authorization", "Bearer "+k) }},
		{"Authorization bearer lower-case", func(h http.Header, k string) { h.Set("Authorization", "bearer  "+k) }},
		{"api-key", func(h http.Header, k string) { h.Set("api-key", k) }},
		{"x-api-key", func(h http.Header, k string) { h.Set("x-api-key", k) }},
		{"x-goog-api-key", func(h http.Header, k string) { h.Set("x-goog-api-key", k) }},
		{"WebSocket subprotocol", func(h http.Header, k string) {
			h.Set("Sec-WebSocket-Protocol", "realtime, openai-insecure-api-key."+k+", openai-beta.realtime-v1")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := newAccessUpstream(t, nil)
			p := startAccessProxy(t, up, keyedEnv(), nil, nil)
			for _, bad := range []string{testProxyKey + "x", testProxyKey[:len(testProxyKey)-1], strings.ToUpper(testProxyKey), testRealKey} {
				h := http.Header{}
				tc.set(h, bad)
				res, body := p.do(t, "GET", "/v1/models", h)
				if res.StatusCode != http.StatusUnauthorized || acErrorCode(t, body) != "invalid_api_key" {
					t.Errorf("wrong key: %d %s; want 401 invalid_api_key", res.StatusCode, body)
				}
				if strings.Contains(body, bad) {
					t.Errorf("401 body repeats the presented key: %s", body)
				}
			}
			if n := up.hits.Load(); n != 0 {
				t.Fatalf("wrong keys reached the upstream %d times; want 0", n)
			}
			for _, good := range []string{testProxyKey, testProxyKey2} {
				h := http.Header{}
				tc.set(h, good)
				if res, body := p.do(t, "GET", "/v1/models", h); res.StatusCode != http.StatusOK {
					t.Errorf("proxy key: %d %s; want 200", res.StatusCode, body)
				}
				checkOnlyRealKey(t, up.lastHeader(), "Authorization", "Bearer "+testRealKey)
			}
			logs := p.logs()
			for _, want := range []string{"caller=alice", "caller=key#2", "rejected=invalid_api_key"} {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %q:\n%s", want, logs)
				}
			}
		})
	}
}

// checkOnlyRealKey checks that the upstream got the real key in header and no
// client credential anywhere.
func checkOnlyRealKey(t *testing.T, got http.Header, header, want string) {
	t.Helper()
	if v := got.Values(header); len(v) != 1 || v[0] != want {
		t.Errorf("upstream %s = %q; want exactly %q", header, v, want)
	}
	for name, values := range got {
		for _, v := range values {
			if strings.Contains(v, testProxyKey) || strings.Contains(v, testProxyKey2) {
				t.Errorf("upstream got the proxy key in %s: %q", name, v)
			}
		}
		if name != header && (name == "Authorization" || isCredentialHeader(name)) {
			t.Errorf("upstream got client credential header %s: %q", name, values)
		}
	}
}

// TestProxyKeys_notAKey covers requests that carry no key in an accepted place.
func TestProxyKeys_notAKey(t *testing.T) {
	up := newAccessUpstream(t, nil)
	p := startAccessProxy(t, up, keyedEnv(), nil, nil)
	for _, tc := range []struct {
		name, path string
		h          http.Header
	}{
		{"nothing", "/v1/models", nil},
		{"Basic scheme", "/v1/models", acHeader("Authorization", "Basic "+testProxyKey)},
		{"no scheme", "/v1/models", acHeader("Authorization", testProxyKey)},
		{"empty Bearer", "/v1/models", acHeader("Authorization", "Bearer ")},
		// Only a parameter named exactly key carries a key (Gemini's REST form).
		{"other query parameters", "/v1/models?Key=" + testProxyKey + "&api-key=" + testProxyKey + "&x=key%3D" + testProxyKey, nil},
		{"Proxy-Authorization", "/v1/models", acHeader("Proxy-Authorization", "Bearer "+testProxyKey)},
		{"other subprotocol", "/v1/realtime", acHeader("Sec-WebSocket-Protocol", "realtime, "+testProxyKey)},
	} {
		res, body := p.do(t, "GET", tc.path, tc.h)
		if res.StatusCode != http.StatusUnauthorized || acErrorCode(t, body) != "missing_api_key" {
			t.Errorf("%s: %d %s; want 401 missing_api_key", tc.name, res.StatusCode, body)
		}
		if !strings.HasPrefix(res.Header.Get("Www-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate = %q; want a Bearer challenge", tc.name, res.Header.Get("Www-Authenticate"))
		}
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("upstream hit %d times; want 0", n)
	}
	if logs := p.logs(); !strings.Contains(logs, "rejected=missing_api_key") {
		t.Errorf("log lacks rejected=missing_api_key:\n%s", logs)
	}
}

// TestKeyInjection_replacesClientCredentials checks that with an upstream key
// (and no proxy keys) every client credential is removed and the real key sent.
func TestKeyInjection_replacesClientCredentials(t *testing.T) {
	up := newAccessUpstream(t, nil)
	p := startAccessProxy(t, up, map[string]string{"OXY_UPSTREAM_API_KEY": testRealKey, "OXY_ALLOW_CIDRS": "127.0.0.1"}, nil, nil)
	res, _ := p.do(t, "GET", "/v1/models", acHeader(
		"Authorization", "Bearer "+testProxyKey, "Api-Key", testProxyKey, "X-Api-Key", testProxyKey, "X-Goog-Api-Key", testProxyKey,
		"Sec-WebSocket-Protocol", "openai-insecure-api-key."+testProxyKey, "OpenAI-Organization", "org-1"))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d; want 200", res.StatusCode)
	}
	got := up.lastHeader()
	checkOnlyRealKey(t, got, "Authorization", "Bearer "+testRealKey)
	if _, ok := got["Sec-Websocket-Protocol"]; ok {
		t.Errorf("upstream got Sec-WebSocket-Protocol %q; want it dropped once only the key entry was in it", got["Sec-Websocket-Protocol"])
	}
	if got.Get("Openai-Organization") != "org-1" {
		t.Errorf("upstream lost OpenAI-Organization: %v", got)
	}
}

// TestKeyInjection_headerOverride sends the real key in the header named by
// OXY_UPSTREAM_API_KEY_HEADER, bare, with no Authorization left.
func TestKeyInjection_headerOverride(t *testing.T) {
	up := newAccessUpstream(t, nil)
	env := keyedEnv()
	env["OXY_UPSTREAM_API_KEY_HEADER"] = "api-key"
	p := startAccessProxy(t, up, env, nil, nil)
	if res, _ := p.do(t, "GET", "/v1/models", acHeader("Authorization", "Bearer "+testProxyKey)); res.StatusCode != http.StatusOK {
		t.Fatalf("status %d; want 200", res.StatusCode)
	}
	checkOnlyRealKey(t, up.lastHeader(), "Api-Key", testRealKey)
}

// TestKeyInjection_azureHost proxies to an Azure OpenAI host name, dialled on
// the mock upstream's socket, and checks that the key goes in api-key.
func TestKeyInjection_azureHost(t *testing.T) {
	up := newAccessUpstream(t, nil)
	upAddr := up.srv.Listener.Addr().String()
	dialer := &net.Dialer{}
	transport := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, upAddr)
	}}
	t.Cleanup(transport.CloseIdleConnections)
	env := keyedEnv()
	env["OXY_TARGET"] = "http://myres.openai.azure.com/openai"
	p := startAccessProxy(t, up, env, transport, nil)
	res, body := p.do(t, "POST", "/deployments/gpt/chat/completions?api-version=2024-10-21", acHeader("Api-Key", testProxyKey))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d %s; want 200", res.StatusCode, body)
	}
	checkOnlyRealKey(t, up.lastHeader(), "Api-Key", testRealKey)
}

// TestRealKey_neverLoggedOrEchoed plants the keys, drives success, refusal,
// preflight, health and upstream-failure paths with debug logging in both
// formats, and greps every response and the log for them.
func TestRealKey_neverLoggedOrEchoed(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			up := newAccessUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/broken" {
					conn, _, err := http.NewResponseController(w).Hijack()
					if err == nil {
						conn.Close() // the upstream fails: the proxy answers 502
					}
					return
				}
				w.Header().Set("X-Request-Id", "req-1")
				_, _ = io.WriteString(w, `{"ok":true}`)
			})
			env := keyedEnv()
			env["OXY_LOG_FORMAT"] = format
			env["OXY_CORS_ORIGINS"] = "*"
			p := startAccessProxy(t, up, env, nil, nil)
			var seen strings.Builder
			for _, rq := range []struct {
				method, path string
				h            http.Header
			}{
				{"GET", "/v1/models", acHeader("Authorization", "Bearer "+testProxyKey)},
				{"GET", "/v1/models?key=" + testProxyKey2, acHeader("X-Api-Key", testProxyKey2)},
				{"POST", "/v1/broken", acHeader("Authorization", "Bearer "+testProxyKey, "Origin", "https://a.example")},
				{"GET", "/v1/models", acHeader("Authorization", "Bearer "+testRealKey)},
				{"GET", "/v1/models", nil},
				{"OPTIONS", "/v1/models", acHeader("Origin", "https://a.example", "Access-Control-Request-Method", "POST")},
				{"GET", "/healthz", nil},
			} {
				res, body := p.do(t, rq.method, rq.path, rq.h)
				fmt.Fprintf(&seen, "%s %s -> %d %v %s\n", rq.method, rq.path, res.StatusCode, res.Header, body)
			}
			if !strings.Contains(seen.String(), "/v1/broken -> 502") {
				t.Errorf("upstream failure not answered 502:\n%s", seen.String())
			}
			if strings.Contains(seen.String(), testRealKey) {
				t.Errorf("a response shows the real key:\n%s", seen.String())
			}
			logs := p.logs()
			for _, secret := range []string{testRealKey, testProxyKey, testProxyKey2} {
				if strings.Contains(logs, secret) {
					t.Errorf("log shows a key:\n%s", logs)
				}
			}
			if !strings.Contains(logs, "alice") || !strings.Contains(logs, "key#2") {
				t.Errorf("log does not name the callers:\n%s", logs)
			}
		})
	}
}

// TestWebSocket_subprotocolAuth upgrades a raw connection through the proxy
// with the key in the subprotocol list, as browser Realtime clients do: the
// upstream accepts, gets the real key in Authorization, and the subprotocols
// without the key entry; the tunnel then carries data both ways. A wrong key
// is refused before the upstream.
func TestWebSocket_subprotocolAuth(t *testing.T) {
	up := newAccessUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Protocol: realtime\r\n\r\n")
		line, err := brw.ReadString('\n')
		if err == nil {
			_, _ = io.WriteString(conn, "echo:"+line)
		}
	})
	p := startAccessProxy(t, up, keyedEnv(), nil, nil)

	res, conn, br := rawUpgrade(t, p.srv.Listener.Addr().String(), testProxyKey+"-wrong")
	conn.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong key: status %d; want 401", res.StatusCode)
	}
	if n := up.hits.Load(); n != 0 {
		t.Fatalf("wrong key reached the upstream %d times; want 0", n)
	}

	res, conn, br = rawUpgrade(t, p.srv.Listener.Addr().String(), testProxyKey)
	defer conn.Close()
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Sec-Websocket-Protocol") != "realtime" {
		t.Fatalf("upgrade: status %d, protocol %q; want 101 realtime", res.StatusCode, res.Header.Get("Sec-Websocket-Protocol"))
	}
	got := up.lastHeader()
	if v := got.Values("Sec-Websocket-Protocol"); len(v) != 1 || v[0] != "realtime, openai-beta.realtime-v1" {
		t.Errorf("upstream Sec-WebSocket-Protocol = %q; want the list without the key entry", v)
	}
	checkOnlyRealKey(t, got, "Authorization", "Bearer "+testRealKey)
	if _, err := io.WriteString(conn, "hello\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := br.ReadString('\n'); err != nil || line != "echo:hello\n" {
		t.Errorf("through the tunnel: %q, %v; want echo:hello", line, err)
	}
	conn.Close()
	// The hijacked connection is not waited for by the server's Close: the
	// line is written when the tunnel's copies end, soon after both closes.
	if logs := p.waitLog(t, "caller=alice"); !strings.Contains(logs, "status=101") {
		t.Errorf("log lacks the upgrade by alice:\n%s", logs)
	}
}

// rawUpgrade sends a WebSocket upgrade request offering the key as a
// subprotocol and returns the response, leaving the connection open.
func rawUpgrade(t *testing.T, addr, key string) (*http.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // only against a hang
	_, err = fmt.Fprintf(conn, "GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://app.example.com\r\n"+
		"Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.%s, openai-beta.realtime-v1\r\n\r\n", addr, key)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	return res, conn, br
}

// FuzzRemoveCredentials checks on arbitrary header values and queries that
// once the client's credentials are removed, no key can be read from the
// request any more, and the query keeps every other pair byte for byte.
func FuzzRemoveCredentials(f *testing.F) {
	f.Add("Bearer sk-1", "k", "realtime, openai-insecure-api-key.sk-2, x", "alt=sse&key=sk-3")
	f.Add("bearer\tsk", "", "openai-insecure-api-key.,openai-insecure-api-key.a", "%6Bey=a&&key&b=%zz")
	f.Add("", " ", ",,, openai-insecure-api-key.k ,", "a=1;key=2&k%65y=3+&key=")
	f.Fuzz(func(t *testing.T, auth, apiKey, protocols, query string) {
		h := http.Header{"authorization": {auth}, "Api-Key": {apiKey}, "sec-websocket-protocol": {protocols, protocols}}
		out := &http.Request{Header: h, URL: &url.URL{RawQuery: query}}
		removeClientCredentials(out)
		if keys := presentedKeys(h, out.URL.RawQuery); len(keys) != 0 {
			t.Fatalf("after removal, keys %q remain in %v ?%s", keys, h, out.URL.RawQuery)
		}
		for _, v := range h["sec-websocket-protocol"] {
			if strings.TrimSpace(v) == "" {
				t.Fatalf("empty Sec-WebSocket-Protocol value left: %q", h)
			}
		}
		var kept []string
		for _, pair := range strings.Split(query, "&") {
			if k, _, _ := strings.Cut(pair, "="); !queryNameIs(k, keyQueryParam) {
				kept = append(kept, pair)
			}
		}
		if want := strings.Join(kept, "&"); out.URL.RawQuery != want {
			t.Fatalf("query %q became %q; want %q", query, out.URL.RawQuery, want)
		}
	})
}

// TestCredentialApply_replacesEverySpelling: a header map built by hand
// (serverless adapters) may hold the client's value under a lower-case name;
// only the real key may remain.
func TestCredentialApply_replacesEverySpelling(t *testing.T) {
	out := &http.Request{URL: &url.URL{RawQuery: "a=1&key=" + testProxyKey}, Header: http.Header{
		"x-custom-key": {"client"}, "X-CUSTOM-KEY": {"client"}, "authorization": {"Bearer " + testProxyKey},
		"sec-websocket-protocol": {"openai-insecure-api-key." + testProxyKey + ", realtime"}}}
	removeClientCredentials(out)
	credentialForHeader("x-custom-key").Apply(out, testRealKey)
	want := http.Header{"X-Custom-Key": {testRealKey}, "sec-websocket-protocol": {"realtime"}}
	if !reflect.DeepEqual(out.Header, want) || out.URL.RawQuery != "a=1" {
		t.Errorf("headers = %q, query %q; want %q, a=1", out.Header, out.URL.RawQuery, want)
	}
}

// TestKeyring_workIndependentOfTheKey keeps holding that the key check's
// time does not depend on the key: whatever is presented (right, wrong,
// a prefix, longer, at any position), every presented key is compared
// with every proxy key, always as 32-byte digests, never stopping early.
func TestKeyring_workIndependentOfTheKey(t *testing.T) {
	keys := []ProxyKey{{Key: "first-proxy-key-0123456789"}, {Name: "b", Key: "second-proxy-key-0123456789"}, {Key: "third-proxy-key-0123456789"}}
	for _, presented := range [][]string{
		{"first-proxy-key-0123456789"},
		{"third-proxy-key-0123456789"},
		{"wrong"},
		{"first-proxy-key-012345678"},
		{"first-proxy-key-0123456789-and-more"},
		{"second-proxy-key-0123456789", "wrong", "x"},
		{strings.Repeat("k", 4096)},
	} {
		k := newKeyring(keys)
		calls := 0
		k.compare = func(a, b []byte) int {
			calls++
			if len(a) != sha256.Size || len(b) != sha256.Size {
				t.Errorf("compared %d and %d bytes; want two SHA-256 digests", len(a), len(b))
			}
			return subtle.ConstantTimeCompare(a, b)
		}
		k.match(presented)
		if want := len(presented) * len(keys); calls != want {
			t.Errorf("presented %d keys: %d comparisons; want %d, every pair", len(presented), calls, want)
		}
	}
}
