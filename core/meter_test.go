package core

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// vendorUpstream answers with a vendor payload from core/usage/testdata,
// flushing after every SSE event as the vendors do.
func vendorUpstream(t *testing.T, file, contentType string) http.HandlerFunc {
	body, err := os.ReadFile(filepath.Join("usage", "testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("X-Request-Id", "req_1")
		if !strings.HasPrefix(contentType, "text/event-stream") {
			w.Write(body)
			return
		}
		sep := []byte("\n\n")
		if bytes.Contains(body, []byte("\r\n\r\n")) {
			sep = []byte("\r\n\r\n")
		}
		for _, ev := range bytes.SplitAfter(body, sep) {
			w.Write(ev)
			w.(http.Flusher).Flush()
		}
	}
}

// logLine returns the only access-log line, decoded.
func (p *testProxy) logLine(t *testing.T) map[string]any {
	t.Helper()
	waitFor(t, func() bool { return len(p.logLines()) == 1 })
	var line map[string]any
	if err := json.Unmarshal([]byte(p.logLines()[0]), &line); err != nil {
		t.Fatal(err)
	}
	return line
}

// TestProxy_meteredUsageInAccessLog sends each vendor's shape, streamed and
// not, through the proxy: the client gets the upstream's bytes and the log
// line carries the tokens the mock sent.
func TestProxy_meteredUsageInAccessLog(t *testing.T) {
	for _, tc := range []struct {
		file, contentType, path, model   string
		input, output, cached, reasoning any // nil: not in the line
	}{
		{"openai_chat.json", "application/json", "/v1/chat/completions", "gpt-4o-2024-08-06", 1117.0, 46.0, 1024.0, 12.0},
		{"openai_chat_stream.sse", "text/event-stream; charset=utf-8", "/v1/chat/completions", "gpt-4o-mini-2024-07-18", 9.0, 2.0, 0.0, 0.0},
		{"openai_completions.json", "application/json", "/v1/completions", "gpt-3.5-turbo-instruct", 5.0, 7.0, nil, nil},
		{"openai_embeddings.json", "application/json", "/v1/embeddings", "text-embedding-3-small", 8.0, nil, nil, nil},
		{"openai_responses.json", "application/json", "/v1/responses", "o4-mini-2025-04-16", 36.0, 87.0, 4.0, 64.0},
		{"openai_responses_stream.sse", "text/event-stream", "/v1/responses", "o4-mini-2025-04-16", 36.0, 87.0, 4.0, 64.0},
		{"anthropic_messages.json", "application/json", "/v1/messages", "claude-sonnet-4-20250514", 3995.0, 503.0, 1800.0, nil},
		{"anthropic_stream.sse", "text/event-stream", "/v1/messages", "claude-sonnet-4-20250514", 2073.0, 15.0, 2048.0, nil},
		{"gemini.json", "application/json; charset=UTF-8", "/v1beta/models/gemini-2.5-flash:generateContent", "gemini-2.5-flash", 308.0, 1225.0, 4.0, 1013.0},
		{"gemini_stream.sse", "text/event-stream", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", "gemini-2.5-flash", 8.0, 52.0, nil, 40.0},
		{"gemini_stream_array.json", "application/json; charset=UTF-8", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", "gemini-2.5-flash", 8.0, 52.0, nil, 40.0},
	} {
		t.Run(tc.file, func(t *testing.T) {
			want, _ := os.ReadFile(filepath.Join("usage", "testdata", tc.file))
			p := newTestProxy(t, vendorUpstream(t, tc.file, tc.contentType), "", nil)
			res, err := http.Post(p.URL+tc.path, "application/json", strings.NewReader(`{"model":"requested-model"}`))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if !bytes.Equal(got, want) {
				t.Fatalf("the client got %d bytes that differ from the upstream's %d", len(got), len(want))
			}
			line := p.logLine(t)
			if line["model"] != tc.model || line["route"] != "default" {
				t.Errorf("model %v, route %v; want %s, default", line["model"], line["route"], tc.model)
			}
			for k, v := range map[string]any{"input_tokens": tc.input, "output_tokens": tc.output, "cached_input_tokens": tc.cached, "reasoning_tokens": tc.reasoning} {
				if line[k] != v {
					t.Errorf("%s = %v; want %v", k, line[k], v)
				}
			}
		})
	}
}

// A gzip answer passes to the client still compressed, byte for byte, and
// is metered from the meter's own decoded copy.
func TestProxy_meteredGzipAnswer(t *testing.T) {
	var wire bytes.Buffer
	zw := gzip.NewWriter(&wire)
	zw.Write([]byte(`{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":21,"completion_tokens":34}}`))
	zw.Close()
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") != "gzip" {
			t.Errorf("upstream got Accept-Encoding %q; want the client's gzip", r.Header.Get("Accept-Encoding"))
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(wire.Bytes())
	})
	p := newTestProxy(t, up, "", nil)
	req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(`{}`))
	req.Header.Set("Accept-Encoding", "gzip") // set by hand: the client does not decode
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !bytes.Equal(got, wire.Bytes()) || res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("client got %d bytes (%q); want the upstream's %d gzip bytes", len(got), res.Header.Get("Content-Encoding"), wire.Len())
	}
	if l := p.logLine(t); l["input_tokens"] != 21.0 || l["output_tokens"] != 34.0 || l["model"] != "gpt-4o-mini" {
		t.Errorf("log line %v; want 21 in, 34 out", l)
	}
}

// anthropicStart is the first event of an Anthropic stream: its input count.
const anthropicStart = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-20250514\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"

// A stream the upstream cuts is metered as far as it went, and logged as aborted.
func TestProxy_meteredStreamCutByUpstream(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, anthropicStart)
		w.(http.Flusher).Flush()
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close() // mid-body, without the chunked terminator
	})
	p := newTestProxy(t, up, "", nil)
	res, err := http.Post(p.URL+"/v1/messages", "application/json", strings.NewReader(`{"model":"claude-sonnet-4-20250514"}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(res.Body)
	res.Body.Close()
	if err == nil {
		t.Error("the client saw a clean end of a cut stream")
	}
	l := p.logLine(t)
	if l["input_tokens"] != 25.0 || l["upstream_error"] != "aborted" || l["aborted"] != true {
		t.Errorf("log line %v; want input 25, upstream_error aborted", l)
	}
}

// A client that abandons a stream is logged as 499 with what was metered;
// the upstream's request is cancelled.
func TestProxy_meteredStreamAbandonedByClient(t *testing.T) {
	cancelled := make(chan struct{})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, anthropicStart)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(cancelled)
	})
	p := newTestProxy(t, up, "", nil)
	res, err := http.Post(p.URL+"/v1/messages", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	res.Body.Close() // the client leaves
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request was not cancelled")
	}
	l := p.logLine(t)
	if l["status"] != 499.0 || l["input_tokens"] != 25.0 || l["model"] != "claude-sonnet-4-20250514" {
		t.Errorf("log line %v; want 499 with input 25", l)
	}
	if _, ok := l["upstream_error"]; ok {
		t.Errorf("a client leaving is no upstream error: %v", l)
	}
}

// Without a model in the answer (an error), the request's is logged; an
// error answer carries no tokens.
func TestProxy_modelFromRequest(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"},"usage":{"prompt_tokens":5}}`)
	})
	for _, tc := range []struct{ path, body, model string }{
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o-mini"}`, "gpt-4o-mini"},
		{"/v1beta/models/gemini-2.5-pro:generateContent", `{"contents":[]}`, "gemini-2.5-pro"},
	} {
		p := newTestProxy(t, up, "", nil)
		res, err := http.Post(p.URL+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		l := p.logLine(t)
		if l["model"] != tc.model || l["status"] != 429.0 {
			t.Errorf("%s: log line %v; want model %s", tc.path, l, tc.model)
		}
		if _, ok := l["input_tokens"]; ok {
			t.Errorf("%s: tokens read from an error answer: %v", tc.path, l)
		}
	}
}

// exchangeRecorder keeps what an Observer is told.
type exchangeRecorder struct {
	mu       sync.Mutex
	started  []string
	finished []Exchange
}

func (o *exchangeRecorder) Started(route string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.started = append(o.started, route)
}

func (o *exchangeRecorder) Finished(x *Exchange) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.finished = append(o.finished, *x)
}

// The observer sees every request once at its start and once at its end,
// refused ones included, with the usage the log line carries.
func TestProxy_observerSeesEveryExchange(t *testing.T) {
	up := httptestServer(t, vendorUpstream(t, "openai_chat_stream.sse", "text/event-stream"))
	cfg, err := FromEnv(testkit.Lookup(map[string]string{"OXY_TARGET": up, "OXY_AUTH_KEYS": "alice:sk-proxy-aaaaaaaaaaaaaaaaaaaa", "OXY_UPSTREAM_API_KEY": "sk-real"}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	obs := &exchangeRecorder{}
	px := httptestServer(t, New(cfg, nil, nil, WithObserver(obs)))
	for _, key := range []string{"sk-proxy-aaaaaaaaaaaaaaaaaaaa", "wrong-key-bbbbbbbbbbbbbbbb"} {
		req, _ := http.NewRequest("POST", px+"/v1/chat/completions", strings.NewReader(`{"stream":true}`))
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	waitFor(t, func() bool { obs.mu.Lock(); defer obs.mu.Unlock(); return len(obs.finished) == 2 })
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.started) != 2 || obs.started[0] != "default" {
		t.Errorf("started %v; want two on default", obs.started)
	}
	ok, refused := obs.finished[0], obs.finished[1]
	if ok.Caller != "alice" || ok.Status != 200 || ok.Usage.Input != 9 || ok.Usage.Output != 2 || ok.Model != "gpt-4o-mini-2024-07-18" {
		t.Errorf("first exchange %+v; want alice, 200, 9 in, 2 out", ok)
	}
	if refused.Status != http.StatusUnauthorized || refused.Usage.Reported != 0 {
		t.Errorf("second exchange %+v; want a 401 without usage", refused)
	}
}

// httptestServer starts h on 127.0.0.1 until the test ends and returns its URL.
func httptestServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// chargeRecorder is the in-memory limiter, recording what each request is
// charged.
type chargeRecorder struct {
	*MemoryLimiter
	mu      sync.Mutex
	charged []int64
}

func (c *chargeRecorder) Done(ctx context.Context, b Budget, lease string, tokens int64, now time.Time) error {
	c.mu.Lock()
	c.charged = append(c.charged, tokens)
	c.mu.Unlock()
	return c.MemoryLimiter.Done(ctx, b, lease, tokens, now)
}

// A daily quota is charged with the metered tokens, streamed or not: an
// OpenAI JSON answer (1117 in + 46 out) and an Anthropic stream (2073 in +
// 15 out) spend a budget of exactly their sum, and the next request is
// refused before the upstream.
func TestBudgets_chargedWithMeteredUsage(t *testing.T) {
	chat := vendorUpstream(t, "openai_chat.json", "application/json")
	stream := vendorUpstream(t, "anthropic_stream.sse", "text/event-stream")
	up := newAccessUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/messages") {
			stream(w, r)
			return
		}
		chat(w, r)
	})
	l := &chargeRecorder{MemoryLimiter: NewMemoryLimiter()}
	p := startBudgetProxy(t, up, limitsEnv(fmt.Sprintf("alice=tpd:%d", 1163+2088)), l, nil)
	for _, path := range []string{"/v1/chat/completions", "/v1/messages"} {
		if res, _ := p.do(t, "POST", path, alice()); res.StatusCode != 200 {
			t.Fatalf("%s: %d", path, res.StatusCode)
		}
	}
	l.mu.Lock()
	charged := append([]int64(nil), l.charged...)
	l.mu.Unlock()
	if len(charged) != 2 || charged[0] != 1163 || charged[1] != 2088 {
		t.Errorf("charged %v; want [1163 2088]", charged)
	}
	res, body := p.do(t, "POST", "/v1/chat/completions", alice())
	if e := acError(t, body); res.StatusCode != 429 || e.Code != "insufficient_quota" {
		t.Errorf("after the quota was spent: %d %s; want 429 insufficient_quota", res.StatusCode, body)
	}
	if n := up.hits.Load(); n != 2 {
		t.Errorf("upstream hit %d times; want 2", n)
	}
}
