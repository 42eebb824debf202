//go:build unix

package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

// routeRequest is one request per route of platformtest's mock vendors, as a
// function URL event carries it.
type routeRequest struct {
	route, rawPath, rawQuery string
	keyName, keyValue        string // where the client put the proxy key
	body                     string
	up                       func(*platformtest.Vendors) *platformtest.Vendor
	forwarded, header, key   string
	stream                   bool
}

var routeRequests = []routeRequest{
	{"anthropic", "/anthropic/v1/messages", "", "x-api-key", platformtest.VendorProxyKey, platformtest.AnthropicStreamBody,
		func(v *platformtest.Vendors) *platformtest.Vendor { return v.Anthropic },
		"POST /v1/messages", "X-Api-Key", platformtest.AnthropicKey, true},
	{"gemini", "/gemini/v1beta/models/gemini-test:streamGenerateContent", "alt=sse&key=" + platformtest.VendorProxyKey, "", "", platformtest.GeminiBody,
		func(v *platformtest.Vendors) *platformtest.Vendor { return v.Gemini },
		"POST /v1beta/models/gemini-test:streamGenerateContent?alt=sse", "X-Goog-Api-Key", platformtest.GeminiKey, true},
	{"openai", "/openai/v1/chat/completions", "", "authorization", "Bearer " + platformtest.VendorProxyKey, platformtest.OpenAIBody,
		func(v *platformtest.Vendors) *platformtest.Vendor { return v.OpenAI },
		"POST /v1/chat/completions", "Authorization", "Bearer " + platformtest.OpenAIKey, false},
	{"default", "/v1/chat/completions", "", "authorization", "Bearer " + platformtest.VendorProxyKey, platformtest.OpenAIBody,
		func(v *platformtest.Vendors) *platformtest.Vendor { return v.Default },
		"POST /v1/chat/completions", "Authorization", "Bearer " + platformtest.DefaultKey, false},
}

// lambdaHeaders are the function URL's own headers in the fixture (trace id,
// x-forwarded-*, TLS details) and the adapter's IAM context header.
func lambdaHeaders(t *testing.T) http.Header {
	t.Helper()
	var ev struct{ Headers map[string]string }
	if err := json.Unmarshal(fixture(t, "chat-completions.json"), &ev); err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for k, v := range ev.Headers {
		if l := strings.ToLower(k); strings.HasPrefix(l, "x-amzn-") || strings.HasPrefix(l, "x-forwarded-") || strings.HasPrefix(l, "x-golambdaproxy-") {
			h.Set(k, v)
		}
	}
	return h
}

// event is the fixture's function URL event carrying rr instead of its own
// request (its platform headers kept, its client credential replaced).
func (rr routeRequest) event(t *testing.T) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(fixture(t, "chat-completions.json"), &ev); err != nil {
		t.Fatal(err)
	}
	headers := map[string]string{"content-type": "application/json"}
	for k, v := range lambdaHeaders(t) {
		headers[strings.ToLower(k)] = v[0]
	}
	if rr.keyName != "" {
		headers[rr.keyName] = rr.keyValue
	}
	ev["rawPath"], ev["rawQueryString"], ev["headers"], ev["body"] = rr.rawPath, rr.rawQuery, headers, rr.body
	delete(ev, "queryStringParameters")
	delete(ev, "cookies")
	ev["requestContext"].(map[string]any)["http"].(map[string]any)["path"] = rr.rawPath
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestE2E_routesBufferedUnderEmulator: the bootstrap in buffered mode, under
// the real emulator, serves every route; each stream arrives whole (buffered
// mode cannot stream), each upstream gets only its own key and none of the
// function URL's headers, and the function's log names the routes.
func TestE2E_routesBufferedUnderEmulator(t *testing.T) {
	t.Parallel()
	v := platformtest.StartVendors(t)
	url, rie := startRIEProcess(t, platformtest.Environ(v.Env())...)
	for _, rr := range routeRequests {
		up := rr.up(v)
		want := platformtest.OpenAIAnswer
		if rr.stream {
			up.ReleaseAll()
			want = up.StreamBody()
		}
		res := invokeRIE(t, url, rr.event(t))
		if res.StatusCode != 200 || res.Body != want {
			t.Errorf("%s: reply %d %q; want 200 %q", rr.route, res.StatusCode, res.Body, want)
		}
		platformtest.CheckForwarded(t, up.Last(t), rr.forwarded, rr.header, rr.key, lambdaHeaders(t))
	}
	// The emulator relays the function's stdout and stderr on its own.
	platformtest.CheckRouteLog(t, func() string { return rie.Stdout.String() + rie.Stderr.String() })
}

// TestE2E_routesStreaming: the bootstrap in response_stream mode streams
// Anthropic's named events and Gemini's alt=sse chunks one by one, each while
// the upstream holds back the next, from their routes.
func TestE2E_routesStreaming(t *testing.T) {
	t.Parallel()
	for _, rr := range routeRequests[:2] {
		t.Run(rr.route, func(t *testing.T) {
			v := platformtest.StartVendors(t)
			up := rr.up(v)
			r, f := startStreaming(t, rr.event(t), platformtest.Environ(v.Env())...)
			if p := platformtest.ReadLambdaPrelude(t, r); p.StatusCode != 200 || !strings.HasPrefix(p.Headers["Content-Type"], "text/event-stream") {
				t.Errorf("prelude %+v; want 200 text/event-stream", p)
			}
			platformtest.ReadStream(t, up, io.Reader(r))
			if e := <-f.errType; e != "" {
				t.Errorf("function error %q; want none", e)
			}
			platformtest.CheckForwarded(t, up.Last(t), rr.forwarded, rr.header, rr.key, lambdaHeaders(t))
			if !f.proc.Stderr.WaitFor(10*time.Second, "route="+rr.route, `"route":"`+rr.route+`"`) {
				t.Errorf("log does not name route %s:\n%s", rr.route, f.proc.Stderr)
			}
		})
	}
}
