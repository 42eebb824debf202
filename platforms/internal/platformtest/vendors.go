package platformtest

// Mock vendors: recording mock upstreams that speak the wire formats of
// OpenAI, Anthropic and Google Gemini, for tests that send several vendors'
// requests through one proxy (OXY_ROUTES). Streams hold back each chunk
// until the test has read the previous one, so a test proves that the proxy
// passes events one by one.

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// The real keys the proxy is given for each route, and the proxy key clients
// present. None may ever reach a client or a log; only the route's own key
// may reach its upstream.
const (
	VendorProxyKey = "pk-vendortest-0123456789abcdef"
	OpenAIKey      = "sk-openai-REAL-0123456789"
	AnthropicKey   = "sk-ant-REAL-0123456789"
	GeminiKey      = "AIza-gemini-REAL-0123456789"
	DefaultKey     = "sk-default-REAL-0123456789"
)

// Vendor is one mock vendor API on 127.0.0.1. Its streamed answer holds back
// each chunk until Next is called.
type Vendor struct {
	*httptest.Server
	recorder
	next   chan struct{}
	done   chan struct{}
	sent   atomic.Int32 // chunks written so far of the current stream (one at a time)
	stream []string     // the chunks of a streamed answer, each flushed on its own
	answer string       // the JSON of a non-streamed answer
	ctype  string       // content type of a streamed answer
}

// Sent reports how many chunks of the current stream the upstream has written.
func (u *Vendor) Sent() int { return int(u.sent.Load()) }

// Next lets a held-back stream write its next chunk.
func (u *Vendor) Next() { u.next <- struct{}{} }

// Chunks returns the chunks of the streamed answer, in order.
func (u *Vendor) Chunks() []string { return append([]string(nil), u.stream...) }

func newVendor(t *testing.T, answer, ctype string, stream []string, isStream func(*http.Request, string) bool) *Vendor {
	t.Helper()
	u := &Vendor{next: make(chan struct{}, 64), done: make(chan struct{}), stream: stream, answer: answer, ctype: ctype}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := u.record(r)
		if !isStream(r, body) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Request-Id", "req_vendortest")
			_, _ = io.WriteString(w, answer)
			return
		}
		u.serveStream(w, r)
	}))
	t.Cleanup(func() {
		close(u.done)
		u.Server.Close()
	})
	return u
}

// serveStream writes each chunk, flushed, and waits for Next before the
// following one.
func (u *Vendor) serveStream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", u.ctype)
	w.Header().Set("Cache-Control", "no-cache")
	u.sent.Store(0)
	for i, c := range u.stream {
		if i > 0 {
			select {
			case <-u.next:
			case <-r.Context().Done():
				return
			case <-u.done:
				return
			}
		}
		// Counted before it is written, so that a client holding chunk i
		// always sees Sent() == i+1 while the next is held back.
		u.sent.Add(1)
		_, _ = io.WriteString(w, c)
		_ = http.NewResponseController(w).Flush()
	}
}

// Vendors are the three mock vendors and an OpenAI-compatible default target.
type Vendors struct {
	Default, OpenAI, Anthropic, Gemini *Vendor
}

// StartVendors starts the mock vendors; they stop with the test.
func StartVendors(t *testing.T) *Vendors {
	t.Helper()
	return &Vendors{Default: NewOpenAI(t), OpenAI: NewOpenAI(t), Anthropic: NewAnthropic(t), Gemini: NewGemini(t)}
}

// Env returns settings that mount the mock vendors as the routes openai,
// anthropic and gemini over the default target, each with its real key, and
// the proxy key clients must present.
func (v *Vendors) Env() map[string]string {
	return map[string]string{
		"OXY_TARGET":                     v.Default.URL,
		"OXY_ROUTES":                     "openai=" + v.OpenAI.URL + ",anthropic=" + v.Anthropic.URL + ",gemini=" + v.Gemini.URL,
		"OXY_AUTH_KEYS":                  "tester:" + VendorProxyKey,
		"OXY_UPSTREAM_API_KEY":           DefaultKey,
		"OXY_UPSTREAM_API_KEY_OPENAI":    OpenAIKey,
		"OXY_UPSTREAM_API_KEY_ANTHROPIC": AnthropicKey,
		"OXY_UPSTREAM_API_KEY_GEMINI":    GeminiKey,
	}
}

// OpenAI chat completions: the answer, and a stream of two deltas and [DONE].
const (
	OpenAIAnswer = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`
	openAIChunk = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",` +
		`"choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}]}`
)

// NewOpenAI starts a mock OpenAI-style API: every POST whose body has
// "stream":true gets the SSE stream, anything else the JSON answer.
func NewOpenAI(t *testing.T) *Vendor {
	return newVendor(t, OpenAIAnswer, "text/event-stream", []string{
		"data: " + fmt.Sprintf(openAIChunk, "Hello") + "\n\n",
		"data: " + fmt.Sprintf(openAIChunk, " there") + "\n\n",
		"data: [DONE]\n\n",
	}, func(_ *http.Request, body string) bool { return hasStreamTrue(body) })
}

// Anthropic Messages: the answer, and the named events of a streamed one
// (https://docs.anthropic.com/en/docs/build-with-claude/streaming); the ping
// travels with content_block_start, since SDKs skip it.
const AnthropicAnswer = `{"id":"msg_01","type":"message","role":"assistant","model":"claude-test",` +
	`"content":[{"type":"text","text":"Hello there"}],"stop_reason":"end_turn","stop_sequence":null,` +
	`"usage":{"input_tokens":12,"output_tokens":5}}`

// NewAnthropic starts a mock Anthropic API.
func NewAnthropic(t *testing.T) *Vendor {
	ev := func(name, data string) string { return "event: " + name + "\ndata: " + data + "\n\n" }
	return newVendor(t, AnthropicAnswer, "text/event-stream; charset=utf-8", []string{
		ev("message_start", `{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-test","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}`),
		ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`) +
			ev("ping", `{"type": "ping"}`),
		ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}`),
		ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" there"}}`),
		ev("content_block_stop", `{"type":"content_block_stop","index":0}`),
		ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5}}`),
		ev("message_stop", `{"type":"message_stop"}`),
	}, func(_ *http.Request, body string) bool { return hasStreamTrue(body) })
}

// Gemini generateContent: the answer, and the chunks of
// :streamGenerateContent?alt=sse, separated by CRLF CRLF as the API sends them.
const (
	GeminiAnswer = `{"candidates":[{"content":{"parts":[{"text":"Hello there"}],"role":"model"},"finishReason":"STOP","index":0}],` +
		`"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2,"totalTokenCount":6},"modelVersion":"gemini-test"}`
	geminiChunk = `{"candidates":[{"content":{"parts":[{"text":%q}],"role":"model"},"index":0}],` +
		`"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":%d,"totalTokenCount":%d},"modelVersion":"gemini-test"}`
)

// NewGemini starts a mock Gemini API: a path with :streamGenerateContent and
// alt=sse gets the SSE stream, anything else the JSON answer.
func NewGemini(t *testing.T) *Vendor {
	return newVendor(t, GeminiAnswer, "text/event-stream", []string{
		"data: " + fmt.Sprintf(geminiChunk, "Hello", 1, 5) + "\r\n\r\n",
		"data: " + fmt.Sprintf(geminiChunk, " there", 2, 6) + "\r\n\r\n",
	}, func(r *http.Request, _ string) bool {
		return strings.HasSuffix(r.URL.Path, ":streamGenerateContent") && r.URL.Query().Get("alt") == "sse"
	})
}

func hasStreamTrue(body string) bool {
	return strings.Contains(strings.ReplaceAll(body, " ", ""), `"stream":true`)
}

// ReadStream reads u's streamed answer from body chunk by chunk and checks
// that each chunk arrives whole while the upstream holds back the next one,
// then lets the upstream go on. It fails the test on a missing, changed or
// late chunk.
func ReadStream(t *testing.T, u *Vendor, body io.Reader) {
	t.Helper()
	br := bufio.NewReader(body)
	for i, want := range u.stream {
		got := make(chan string, 1)
		go func() {
			var b strings.Builder
			for b.Len() < len(want) {
				c, err := br.ReadByte()
				if err != nil {
					break
				}
				b.WriteByte(c)
			}
			got <- b.String()
		}()
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("stream chunk %d = %q; want %q", i, g, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("stream chunk %d not delivered while the upstream held back the next: the response is buffered", i)
		}
		if n := u.Sent(); n != i+1 {
			t.Fatalf("upstream had sent %d chunks when chunk %d arrived; want it still holding back the next", n, i)
		}
		u.Next()
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("bytes after the stream: %q", rest)
	}
}

// CheckOnlyKey fails the test unless header carries exactly want among the
// credential locations of h, and no other credential header is present.
func CheckOnlyKey(t *testing.T, s Seen, header, want string) {
	t.Helper()
	for _, name := range []string{"Authorization", "Api-Key", "X-Api-Key", "X-Goog-Api-Key"} {
		got := s.Header.Values(name)
		switch {
		case name == header && (len(got) != 1 || got[0] != want):
			t.Errorf("%s %s: upstream got %s %q; want %q", s.Method, s.URI, name, got, want)
		case name != header && len(got) != 0:
			t.Errorf("%s %s: upstream got client credential %s %q", s.Method, s.URI, name, got)
		}
	}
	if strings.Contains(s.URI, "key=") || strings.Contains(s.URI, VendorProxyKey) {
		t.Errorf("upstream got a key in the URI %q", s.URI)
	}
	for name, values := range s.Header {
		for _, v := range values {
			if strings.Contains(v, VendorProxyKey) {
				t.Errorf("upstream got the proxy key in %s", name)
			}
		}
	}
}

// ReleaseAll lets the next stream run to its end without holding back, for
// platforms that deliver the whole answer at once (Lambda buffered, the SCF
// event function).
func (u *Vendor) ReleaseAll() {
	for range len(u.stream) - 1 {
		u.next <- struct{}{}
	}
}

// StreamBody is the whole streamed answer.
func (u *Vendor) StreamBody() string { return strings.Join(u.stream, "") }

// Requests of the route checks: Anthropic's and Gemini's streams, each with
// the proxy key where that vendor's SDK puts its key.
const (
	AnthropicStreamBody = `{"model":"claude-test","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}`
	GeminiBody          = `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`
	OpenAIBody          = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
)

// CheckRoutes sends one request per route to a proxy started with v.Env(),
// whose routes are reached under base (the proxy's URL plus any prefix the
// platform strips), with the platform's headers added: Anthropic's named
// events and Gemini's alt=sse chunks must arrive chunked and one by one while
// the upstream holds back the next; every upstream must get the path without
// the route prefix, only its own real key in its vendor's header, and none of
// the platform's headers.
func CheckRoutes(t *testing.T, v *Vendors, base string, platform http.Header) {
	t.Helper()
	if platform == nil {
		platform = http.Header{}
	}
	h := platform.Clone()
	h.Set("Content-Type", "application/json")
	h.Set("X-Api-Key", VendorProxyKey)
	h.Set("Anthropic-Version", "2023-06-01")
	res := post(t, base+"/anthropic/v1/messages", h, AnthropicStreamBody)
	checkChunked(t, res)
	ReadStream(t, v.Anthropic, res.Body)
	res.Body.Close()
	CheckForwarded(t, v.Anthropic.Last(t), "POST /v1/messages", "X-Api-Key", AnthropicKey, platform)

	h = platform.Clone()
	h.Set("Content-Type", "application/json")
	res = post(t, base+"/gemini/v1beta/models/gemini-test:streamGenerateContent?alt=sse&key="+VendorProxyKey, h, GeminiBody)
	checkChunked(t, res)
	ReadStream(t, v.Gemini, res.Body)
	res.Body.Close()
	CheckForwarded(t, v.Gemini.Last(t), "POST /v1beta/models/gemini-test:streamGenerateContent?alt=sse", "X-Goog-Api-Key", GeminiKey, platform)

	for _, tc := range []struct {
		path string
		up   *Vendor
		key  string
	}{
		{"/openai/v1/chat/completions", v.OpenAI, OpenAIKey},
		{"/v1/chat/completions", v.Default, DefaultKey},
	} {
		h = platform.Clone()
		h.Set("Content-Type", "application/json")
		h.Set("Authorization", "Bearer "+VendorProxyKey)
		res = post(t, base+tc.path, h, OpenAIBody)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(body) != OpenAIAnswer {
			t.Errorf("POST %s: %d %q; want the mock's answer", tc.path, res.StatusCode, body)
		}
		CheckForwarded(t, tc.up.Last(t), "POST /v1/chat/completions", "Authorization", "Bearer "+tc.key, platform)
	}
}

func post(t *testing.T, url string, h http.Header, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func checkChunked(t *testing.T, res *http.Response) {
	t.Helper()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("%s: status %d (%s); want 200", res.Request.URL.Path, res.StatusCode, b)
	}
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") || res.ContentLength != -1 {
		t.Errorf("%s: Content-Type %q, length %d; want an event stream of unknown length", res.Request.URL.Path,
			res.Header.Get("Content-Type"), res.ContentLength)
	}
}

// CheckForwarded checks one request as an upstream received it: its method
// and URI, only the route's real key in header, and none of the platform's
// headers.
func CheckForwarded(t *testing.T, s Seen, wantRequest, header, key string, platform http.Header) {
	t.Helper()
	if got := s.Method + " " + s.URI; got != wantRequest {
		t.Errorf("upstream got %s; want %s", got, wantRequest)
	}
	CheckOnlyKey(t, s, header, key)
	for name := range platform {
		if v, ok := s.Header[http.CanonicalHeaderKey(name)]; ok {
			t.Errorf("%s: upstream got platform header %s %q", wantRequest, name, v)
		}
	}
}

// CheckRouteLog waits until log (text or JSON; a line is written once its
// response is done) names every route of v.Env(), and checks that it holds
// none of its keys.
func CheckRouteLog(t *testing.T, log func() string) {
	t.Helper()
	names := func(s, route string) bool {
		return strings.Contains(s, "route="+route) || strings.Contains(s, `"route":"`+route+`"`)
	}
	routes := []string{"anthropic", "gemini", "openai", "default"}
	testkit.WaitUntil(10*time.Second, func() bool {
		s := log()
		for _, r := range routes {
			if !names(s, r) {
				return false
			}
		}
		return true
	})
	s := log()
	for _, r := range routes {
		if !names(s, r) {
			t.Errorf("access log does not name route %s:\n%s", r, s)
		}
	}
	for _, key := range []string{VendorProxyKey, OpenAIKey, AnthropicKey, GeminiKey, DefaultKey} {
		if strings.Contains(s, key) {
			t.Errorf("log holds the key %q", key)
		}
	}
}
