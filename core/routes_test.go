package core

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

func TestFromEnv_routes(t *testing.T) {
	bearer, xAPIKey, goog, apiKey := bearerCredential, Credential{Header: "X-Api-Key"}, Credential{Header: "X-Goog-Api-Key"}, apiKeyCredential
	type want struct {
		name, target string
		cred         Credential
		keySetting   string
	}
	tests := []struct {
		routes string
		want   []want
	}{
		{"", nil},
		{"openai, anthropic,gemini", []want{
			{"openai", "https://api.openai.com", bearer, "OXY_UPSTREAM_API_KEY_OPENAI"},
			{"anthropic", "https://api.anthropic.com", xAPIKey, "OXY_UPSTREAM_API_KEY_ANTHROPIC"},
			{"gemini", "https://generativelanguage.googleapis.com", goog, "OXY_UPSTREAM_API_KEY_GEMINI"},
		}},
		{"xai,deepseek,groq,mistral,openrouter", []want{
			{"xai", "https://api.x.ai", bearer, "OXY_UPSTREAM_API_KEY_XAI"},
			{"deepseek", "https://api.deepseek.com", bearer, "OXY_UPSTREAM_API_KEY_DEEPSEEK"},
			{"groq", "https://api.groq.com/openai", bearer, "OXY_UPSTREAM_API_KEY_GROQ"},
			{"mistral", "https://api.mistral.ai", bearer, "OXY_UPSTREAM_API_KEY_MISTRAL"},
			{"openrouter", "https://openrouter.ai/api", bearer, "OXY_UPSTREAM_API_KEY_OPENROUTER"},
		}},
		// A preset's name with a URL keeps the preset's credential scheme.
		{"anthropic=https://gateway.example/anthropic/", []want{
			{"anthropic", "https://gateway.example/anthropic", xAPIKey, "OXY_UPSTREAM_API_KEY_ANTHROPIC"},
		}},
		// Any other name with a URL: api-key for Azure OpenAI hosts, else Bearer.
		{"azure=https://res.openai.azure.com, my-llm-2=http://10.0.0.5:8000/v1", []want{
			{"azure", "https://res.openai.azure.com", apiKey, "OXY_UPSTREAM_API_KEY_AZURE"},
			{"my-llm-2", "http://10.0.0.5:8000/v1", bearer, "OXY_UPSTREAM_API_KEY_MY_LLM_2"},
		}},
	}
	for _, tc := range tests {
		c, err := FromEnv(testkit.Lookup(map[string]string{"OXY_ROUTES": tc.routes}), Options{})
		if err != nil {
			t.Errorf("OXY_ROUTES=%q: %v", tc.routes, err)
			continue
		}
		if len(c.Routes) != len(tc.want) {
			t.Errorf("OXY_ROUTES=%q: %d routes; want %d", tc.routes, len(c.Routes), len(tc.want))
			continue
		}
		for i, w := range tc.want {
			r := c.Routes[i]
			if r.Name != w.name || r.Target.String() != w.target || r.Credential != w.cred || r.KeySetting != w.keySetting || r.Keys != nil {
				t.Errorf("OXY_ROUTES=%q: route %d = %s %s %v %s; want %s %s %v %s", tc.routes, i,
					r.Name, r.Target, r.Credential, r.KeySetting, w.name, w.target, w.cred, w.keySetting)
			}
		}
		if d := c.DefaultRoute(); d.Name != DefaultRouteName || d.Target.String() != "https://api.openai.com" || d.Credential != bearer {
			t.Errorf("OXY_ROUTES=%q: default route = %+v; want OXY_TARGET with Bearer", tc.routes, d)
		}
	}
}

func TestFromEnv_routeKeys(t *testing.T) {
	env := map[string]string{
		"OXY_ROUTES":                     "anthropic,my-gw=https://gw.example",
		"OXY_AUTH_KEYS":                  "alice:" + testProxyKey,
		"OXY_UPSTREAM_API_KEY":           testRealKey,
		"OXY_UPSTREAM_API_KEY_ANTHROPIC": "sk-ant-real-0123456789",
		"OXY_UPSTREAM_API_KEY_MY_GW":     "gw-real-0123456789, gw-real-second-456789",
	}
	c, err := FromEnv(testkit.Lookup(env), Options{Environ: testkit.Environ(env)})
	if err != nil {
		t.Fatal(err)
	}
	if got := revealAll(c.Routes[0].Keys); fmt.Sprint(got) != "[sk-ant-real-0123456789]" {
		t.Errorf("anthropic keys = %q", got)
	}
	if got := revealAll(c.Routes[1].Keys); fmt.Sprint(got) != "[gw-real-0123456789 gw-real-second-456789]" {
		t.Errorf("my-gw keys = %q; want both, in order", got)
	}
	if d := c.DefaultRoute(); fmt.Sprint(revealAll(d.Keys)) != "["+testRealKey+"]" || d.KeySetting != "OXY_UPSTREAM_API_KEY" {
		t.Errorf("default route key from %s", d.KeySetting)
	}
}

// TestFromEnv_routesInvalid checks every bad route setting at once: each
// problem is named, and no key value is ever printed.
func TestFromEnv_routesInvalid(t *testing.T) {
	const secret = "sk-SECRET-never-printed-42"
	env := map[string]string{
		"OXY_ROUTES": "anthropc, Open_AI, openai, openai=https://x.example, v1, v1beta=https://x.example, healthz, " +
			"default, header, nohost=https://, noscheme=api.example.com, ftp=ftp://x.example, " +
			"creds=https://user:" + secret + "@x.example, query=https://x.example/?key=" + secret + ", gemini",
		"OXY_UPSTREAM_API_KEY_GEMNI":  secret,
		"OXY_UPSTREAM_API_KEY_NOPE":   secret,
		"OXY_UPSTREAM_API_KEY_GEMINI": secret + " with space",
		"OXY_AUTH_KEYS":               testProxyKey,
		"OXY_UPSTREAM_API_KEY":        testRealKey,
	}
	_, err := FromEnv(testkit.Lookup(env), Options{Environ: testkit.Environ(env)})
	if err == nil {
		t.Fatal("FromEnv accepted bad routes")
	}
	msg := err.Error()
	for _, want := range []string{
		`OXY_ROUTES entry "anthropc": no preset named anthropc, did you mean anthropic?`,
		`OXY_ROUTES entry "Open_AI": the name must be 1-32 lower-case letters, digits and -`,
		`OXY_ROUTES entry "openai=https://x.example": route openai is listed twice`,
		`OXY_ROUTES entry "v1": the name would hide OXY_TARGET's own API paths (/v1/...)`,
		`OXY_ROUTES entry "v1beta=https://x.example": the name would hide OXY_TARGET's own API paths (/v1beta/...)`,
		`OXY_ROUTES entry "healthz": the route would hide the health route OXY_HEALTH_PATH=/healthz`,
		`OXY_ROUTES entry "default": the name default is the route of OXY_TARGET`,
		`OXY_ROUTES entry "header": the name header would read its key from OXY_UPSTREAM_API_KEY_HEADER`,
		`OXY_ROUTES entry "nohost=https://": missing host, want https://host`,
		`OXY_ROUTES entry "noscheme=api.example.com": missing scheme, want https://host`,
		`OXY_ROUTES entry "ftp=ftp://x.example": scheme "ftp" not supported`,
		`OXY_ROUTES entry "creds=https://[redacted]@x.example": credentials in the URL are not supported`,
		`OXY_ROUTES entry "query=https://x.example/?key=[redacted]": query or fragment not supported`,
		"OXY_UPSTREAM_API_KEY_GEMNI: set, but OXY_ROUTES has no route gemni, did you mean OXY_UPSTREAM_API_KEY_GEMINI (route gemini)?",
		"OXY_UPSTREAM_API_KEY_NOPE: set, but OXY_ROUTES has no route nope; add nope to OXY_ROUTES or remove the variable",
		"OXY_UPSTREAM_API_KEY_GEMINI: must be printable ASCII without spaces",
		"OXY_AUTH_KEYS: set without OXY_UPSTREAM_API_KEY_OPENAI (route openai); the proxy keys replace the client's key",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	for _, leak := range []string{secret, testProxyKey, testRealKey} {
		if strings.Contains(msg, leak) {
			t.Errorf("error prints a key value %q:\n%s", leak, msg)
		}
	}
	if strings.Contains(msg, "unknown setting") {
		t.Errorf("route keys reported as unknown settings as well:\n%s", msg)
	}
}

// TestFromEnv_routeRulesPerRoute: a route key needs proxy keys or an
// allow-list as the default key does, and may not be handed out as a proxy key.
func TestFromEnv_routeRulesPerRoute(t *testing.T) {
	_, err := FromEnv(testkit.Lookup(map[string]string{
		"OXY_ROUTES": "anthropic", "OXY_UPSTREAM_API_KEY_ANTHROPIC": testRealKey,
	}), Options{})
	if err == nil || !strings.Contains(err.Error(), "OXY_UPSTREAM_API_KEY_ANTHROPIC: set without OXY_AUTH_KEYS or OXY_ALLOW_CIDRS") {
		t.Errorf("route key without proxy keys or allow-list: %v", err)
	}
	_, err = FromEnv(testkit.Lookup(map[string]string{
		"OXY_ROUTES": "anthropic", "OXY_UPSTREAM_API_KEY_ANTHROPIC": testProxyKey,
		"OXY_AUTH_KEYS": testProxyKey, "OXY_UPSTREAM_API_KEY": testRealKey,
	}), Options{})
	if err == nil || !strings.Contains(err.Error(), "a proxy key is the upstream key itself (OXY_UPSTREAM_API_KEY_ANTHROPIC)") {
		t.Errorf("proxy key equal to a route key: %v", err)
	}
}

// TestFromEnv_routeShadowsAzure: with an Azure OpenAI OXY_TARGET, whose API
// lives under /openai/..., a route named openai would take its requests.
func TestFromEnv_routeShadowsAzure(t *testing.T) {
	_, err := FromEnv(testkit.Lookup(map[string]string{"OXY_TARGET": "https://res.openai.azure.com", "OXY_ROUTES": "openai"}), Options{})
	if err == nil || !strings.Contains(err.Error(), "would hide the /openai/... API paths of OXY_TARGET") {
		t.Errorf("openai route over an Azure target: %v", err)
	}
	if _, err := FromEnv(testkit.Lookup(map[string]string{"OXY_TARGET": "https://res.openai.azure.com/openai", "OXY_ROUTES": "openai"}), Options{}); err != nil {
		t.Errorf("openai route over an Azure target with base path /openai: %v", err)
	}
}
