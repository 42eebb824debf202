package tencentscfevent_test

import (
	"net/http"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

// TestInvoke_routes: the event function serves every route from API gateway
// events. The function cannot stream (one reply per invocation), so each
// vendor's stream arrives whole, byte for byte; each upstream gets the path
// without the route prefix, only its own real key (the proxy key came in the
// vendor's header, or as Gemini's ?key=), and none of SCF's headers.
func TestInvoke_routes(t *testing.T) {
	v := platformtest.StartVendors(t)
	f := startFunction(t, platformtest.Environ(v.Env())...)
	scf := platformtest.SCFHeaders()
	headers := func(name, value string) map[string]string {
		h := map[string]string{"Content-Type": "application/json", name: value}
		for k := range scf {
			h[k] = scf.Get(k)
		}
		return h
	}
	for _, tc := range []struct {
		route          string
		up             *platformtest.Vendor
		path           string
		query          map[string]any
		keyName, keyIn string
		body, want     string
		forwarded      string
		header, key    string
	}{
		{"anthropic", v.Anthropic, "/anthropic/v1/messages", map[string]any{}, "x-api-key", platformtest.VendorProxyKey,
			platformtest.AnthropicStreamBody, v.Anthropic.StreamBody(), "POST /v1/messages", "X-Api-Key", platformtest.AnthropicKey},
		{"gemini", v.Gemini, "/gemini/v1beta/models/gemini-test:streamGenerateContent", map[string]any{"alt": "sse", "key": platformtest.VendorProxyKey},
			"X-Request-Tag", "t1", platformtest.GeminiBody, v.Gemini.StreamBody(),
			"POST /v1beta/models/gemini-test:streamGenerateContent?alt=sse", "X-Goog-Api-Key", platformtest.GeminiKey},
		{"openai", v.OpenAI, "/openai/v1/chat/completions", map[string]any{}, "Authorization", "Bearer " + platformtest.VendorProxyKey,
			platformtest.OpenAIBody, platformtest.OpenAIAnswer, "POST /v1/chat/completions", "Authorization", "Bearer " + platformtest.OpenAIKey},
		{"default", v.Default, "/v1/chat/completions", map[string]any{}, "Authorization", "Bearer " + platformtest.VendorProxyKey,
			platformtest.OpenAIBody, platformtest.OpenAIAnswer, "POST /v1/chat/completions", "Authorization", "Bearer " + platformtest.DefaultKey},
	} {
		if tc.want == tc.up.StreamBody() {
			tc.up.ReleaseAll()
		}
		r := f.invoke(t, eventWith(t, "apigw_chat.json", map[string]any{
			"path": tc.path, "queryString": tc.query, "headers": headers(tc.keyName, tc.keyIn), "body": tc.body,
		}))
		if r.StatusCode != http.StatusOK || string(r.body(t)) != tc.want {
			t.Errorf("%s: reply %d %q; want 200 %q", tc.route, r.StatusCode, r.body(t), tc.want)
		}
		platformtest.CheckForwarded(t, tc.up.Last(t), tc.forwarded, tc.header, tc.key, scf)
	}
	platformtest.CheckRouteLog(t, f.logs.String)
}
