package core

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// Benchmarks of the per-request path, for docs/BENCHMARKS.md and for
// profiling (go test -run '^$' -bench . -cpuprofile cpu.out ./core).

var (
	benchRequest  = []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":16}`)
	benchResponse = []byte(`{"id":"chatcmpl-bench0001","object":"chat.completion","created":1732579200,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! I hope you are having a wonderful day.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":14,"completion_tokens":12,"total_tokens":26}}` + "\n")
)

func benchConfig(b *testing.B, target string) Config {
	b.Helper()
	c, err := FromEnv(testkit.Lookup(map[string]string{"OXY_TARGET": target}), Options{})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// benchLoggers are the access-log settings compared: the default (info, text)
// written to a discarding writer, and logging off.
var benchLoggers = []struct {
	name   string
	logger func(Config) *slog.Logger
}{
	{"log=info", func(c Config) *slog.Logger { return NewLogger(c, io.Discard) }},
	{"log=off", func(Config) *slog.Logger { return slog.New(slog.DiscardHandler) }},
}

// BenchmarkProxy_smallJSON sends a small completion request through the
// handler over real loopback sockets to an httptest upstream. Allocations
// include the client and both servers, all in this process.
func BenchmarkProxy_smallJSON(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(benchResponse)))
		_, _ = w.Write(benchResponse)
	}))
	defer up.Close()
	for _, l := range benchLoggers {
		b.Run(l.name, func(b *testing.B) {
			c := benchConfig(b, up.URL)
			px := httptest.NewServer(New(c, l.logger(c), nil))
			defer px.Close()
			client := px.Client()
			url := px.URL + "/v1/chat/completions"
			b.ReportAllocs()
			for b.Loop() {
				res, err := client.Post(url, "application/json", bytes.NewReader(benchRequest))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	}
}

// BenchmarkHandler_smallJSON calls the handler directly with an in-memory
// transport and response writer, so the allocations counted are the
// handler's own (plus the fake response: one http.Response, its header map
// and body reader).
func BenchmarkHandler_smallJSON(b *testing.B) {
	for _, l := range benchLoggers {
		b.Run(l.name, func(b *testing.B) {
			c := benchConfig(b, "https://api.openai.com")
			h := New(c, l.logger(c), fakeTransport{})
			benchSmallJSON(b, h)
		})
	}
}

// benchSmallJSON sends benchRequest to h in memory until the benchmark ends.
func benchSmallJSON(b *testing.B, h http.Handler) {
	benchJSON(b, h, "/v1/chat/completions", "Authorization", "Bearer sk-bench")
}

// benchJSON POSTs benchRequest to path on h in memory, with the credential
// header key set to value, until the benchmark ends.
func benchJSON(b *testing.B, h http.Handler, path, key, value string) {
	body := &resettableBody{}
	r := httptest.NewRequest(http.MethodPost, path, nil)
	r.Header.Set(key, value)
	r.Header.Set("Content-Type", "application/json")
	r.ContentLength = int64(len(benchRequest))
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		body.Reset(benchRequest)
		r.Body = body
		clear(w.h)
		w.status = 0
		h.ServeHTTP(w, r)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}

type fakeTransport struct{}

func (fakeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		ContentLength: int64(len(benchResponse)),
		Body:          io.NopCloser(bytes.NewReader(benchResponse)),
		Request:       r,
	}, nil
}

type resettableBody struct{ bytes.Reader }

func (*resettableBody) Close() error { return nil }

type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.h }

func (w *discardWriter) WriteHeader(code int) { w.status = code }

func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

// BenchmarkHandler_routes compares, in one run, a request to OXY_TARGET on a
// proxy without routes, the same request on a proxy with eight routes, and a
// request to one of those routes with its real key injected in place of the
// client's (the path a /anthropic/... request takes). Logging is off, so the
// difference is the routing and the key injection.
func BenchmarkHandler_routes(b *testing.B) {
	const routes = "openai,anthropic,gemini,xai,deepseek,groq,mistral,openrouter"
	for _, tc := range []struct {
		name, path string
		env        map[string]string
	}{
		{"no-routes", "/v1/chat/completions", nil},
		{"routes/default", "/v1/chat/completions", map[string]string{"OXY_ROUTES": routes}},
		{"routes/anthropic+key", "/anthropic/v1/messages", map[string]string{"OXY_ROUTES": routes,
			"OXY_UPSTREAM_API_KEY_ANTHROPIC": "sk-ant-bench", "OXY_ALLOW_CIDRS": "0.0.0.0/0,::/0"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			env := map[string]string{"OXY_TARGET": "https://api.openai.com"}
			for k, v := range tc.env {
				env[k] = v
			}
			c, err := FromEnv(testkit.Lookup(env), Options{})
			if err != nil {
				b.Fatal(err)
			}
			h := New(c, slog.New(slog.DiscardHandler), fakeTransport{})
			benchJSON(b, h, tc.path, "X-Api-Key", "sk-client")
		})
	}
}

// BenchmarkHandler_realKeys compares a route without a real key (the
// client's passes through), with one real key and with three (the key pool
// and its retrying transport: one pick, a copy of the body kept for a retry).
func BenchmarkHandler_realKeys(b *testing.B) {
	for _, tc := range []struct{ name, keys string }{
		{"keys=0", ""},
		{"keys=1", "sk-real-1111111111"},
		{"keys=3", "sk-real-1111111111,sk-real-2222222222,sk-real-3333333333"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := map[string]string{"OXY_TARGET": "https://api.openai.com", "OXY_LOG_LEVEL": "error"}
			if tc.keys != "" {
				e["OXY_UPSTREAM_API_KEY"], e["OXY_ALLOW_CIDRS"] = tc.keys, "0.0.0.0/0"
			}
			c, err := FromEnv(testkit.Lookup(e), Options{})
			if err != nil {
				b.Fatal(err)
			}
			h := New(c, slog.New(slog.DiscardHandler), fakeTransport{})
			benchSmallJSON(b, h)
		})
	}
}
