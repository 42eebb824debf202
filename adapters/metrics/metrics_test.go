package metrics

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Vendor answers with known token counts, in the vendors' shapes.
var (
	openAIJSON = `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,"prompt_tokens_details":{"cached_tokens":64},"completion_tokens_details":{"reasoning_tokens":8}}}`
	anthropicSSE = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-20250514\",\"usage\":{\"input_tokens\":30,\"cache_read_input_tokens\":10,\"output_tokens\":1}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":12}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	geminiSSE = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}],\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":1},\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n" +
		"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"!\"}]}}],\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":5,\"thoughtsTokenCount\":3},\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n"
)

func mockVendor(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	switch {
	case strings.HasSuffix(r.URL.Path, "/chat/completions"):
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, openAIJSON)
	case strings.HasSuffix(r.URL.Path, "/messages"):
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range strings.SplitAfter(anthropicSSE, "\n\n") {
			io.WriteString(w, ev)
			w.(http.Flusher).Flush()
		}
	case strings.Contains(r.URL.Path, ":streamGenerateContent"):
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, geminiSSE)
	default:
		http.Error(w, `{"error":{"message":"no"}}`, http.StatusNotFound)
	}
}

// scrape reads the metrics endpoint over a real socket and parses it with
// Prometheus's own text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("scrape: status %d", res.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	return mf
}

// sum adds the values of the family's series whose labels include want.
func sum(mf map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var total float64
	f := mf[name]
	if f == nil {
		return -1
	}
series:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

// startMetrics serves m on a loopback port until the test ends.
func startMetrics(t *testing.T, m *Metrics) string {
	t.Helper()
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/metrics"
}

// TestMetrics_scrapeMatchesWhatTheMocksSent drives a real proxy with routes,
// proxy keys and three vendors' mocks, then scrapes the endpoint and
// compares every total with what the mocks sent.
func TestMetrics_scrapeMatchesWhatTheMocksSent(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(mockVendor))
	defer up.Close()
	env := map[string]string{
		"OXY_TARGET":           up.URL,
		"OXY_ROUTES":           "anthropic=" + up.URL + ",gemini=" + up.URL,
		"OXY_AUTH_KEYS":        "alice:sk-proxy-aaaaaaaaaaaaaaaaaaaa,sk-proxy-bbbbbbbbbbbbbbbbbbbb",
		"OXY_UPSTREAM_API_KEY": "sk-real", "OXY_UPSTREAM_API_KEY_ANTHROPIC": "sk-ant-real", "OXY_UPSTREAM_API_KEY_GEMINI": "g-real",
	}
	cfg, err := core.FromEnv(testkit.Lookup(env), core.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	px := httptest.NewServer(core.New(cfg, nil, nil, core.WithObserver(m)))
	defer px.Close()
	send := func(key, path string) int {
		req, _ := http.NewRequest("POST", px.URL+path, strings.NewReader(`{"model":"asked-for"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	const alice, second = "sk-proxy-aaaaaaaaaaaaaaaaaaaa", "sk-proxy-bbbbbbbbbbbbbbbbbbbb"
	for range 3 {
		send(alice, "/v1/chat/completions")
	}
	send(second, "/anthropic/v1/messages")
	send(second, "/anthropic/v1/messages")
	send(alice, "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
	if code := send("sk-proxy-wrong-cccccccccccccc", "/v1/chat/completions"); code != 401 {
		t.Fatalf("wrong key: %d", code)
	}
	url := startMetrics(t, m)
	var mf map[string]*dto.MetricFamily
	// The last request's exchange is observed as its handler returns.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mf = scrape(t, url)
		if sum(mf, "oxy_requests_total", nil) == 7 || time.Now().After(deadline) {
			break
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"oxy_requests_total", nil, 7},
		{"oxy_requests_total", map[string]string{"route": "default", "model": "gpt-4o-mini", "caller": "alice", "code": "200"}, 3},
		{"oxy_requests_total", map[string]string{"route": "anthropic", "model": "claude-sonnet-4-20250514", "caller": "key#2", "code": "200"}, 2},
		{"oxy_requests_total", map[string]string{"route": "gemini", "model": "gemini-2.5-flash", "caller": "alice"}, 1},
		// Refused before anything read its body: no model, no caller.
		{"oxy_requests_total", map[string]string{"code": "401", "model": "", "caller": "anonymous"}, 1},
		// OpenAI 3 x (100 in, 20 out, 64 cached, 8 reasoning).
		{"oxy_tokens_total", map[string]string{"route": "default", "caller": "alice", "type": "input"}, 300},
		{"oxy_tokens_total", map[string]string{"route": "default", "type": "output"}, 60},
		{"oxy_tokens_total", map[string]string{"route": "default", "type": "cached_input"}, 192},
		{"oxy_tokens_total", map[string]string{"route": "default", "type": "reasoning"}, 24},
		// Anthropic 2 x (30 + 10 cache reads in, 12 out: the last message_delta).
		{"oxy_tokens_total", map[string]string{"route": "anthropic", "caller": "key#2", "type": "input"}, 80},
		{"oxy_tokens_total", map[string]string{"route": "anthropic", "type": "output"}, 24},
		{"oxy_tokens_total", map[string]string{"route": "anthropic", "type": "cached_input"}, 20},
		// Gemini: the last chunk, 7 in, 5 + 3 thoughts out.
		{"oxy_tokens_total", map[string]string{"route": "gemini", "model": "gemini-2.5-flash", "type": "input"}, 7},
		{"oxy_tokens_total", map[string]string{"route": "gemini", "type": "output"}, 8},
		{"oxy_tokens_total", map[string]string{"route": "gemini", "type": "reasoning"}, 3},
		{"oxy_tokens_total", map[string]string{"caller": "anonymous"}, 0},
		{"oxy_request_duration_seconds", nil, 7},
		{"oxy_request_duration_seconds", map[string]string{"route": "anthropic"}, 2},
		{"oxy_time_to_first_byte_seconds", nil, 7},
		{"oxy_in_flight_requests", nil, 0},
	} {
		if got := sum(mf, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v; want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if mf[name] == nil {
			t.Errorf("no %s: the Go runtime and process collectors are missing", name)
		}
	}
}

// An upstream that cannot be reached is counted by kind.
func TestMetrics_upstreamErrors(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cfg, err := core.FromEnv(testkit.Lookup(map[string]string{"OXY_TARGET": "http://" + addr}), core.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	px := httptest.NewServer(core.New(cfg, nil, nil, core.WithObserver(m)))
	defer px.Close()
	res, err := http.Get(px.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	mf := scrape(t, startMetrics(t, m))
	if got := sum(mf, "oxy_upstream_errors_total", map[string]string{"route": "default", "kind": "unreachable"}); got != 1 {
		t.Errorf("unreachable errors %v; want 1", got)
	}
	if got := sum(mf, "oxy_requests_total", map[string]string{"code": "502"}); got != 1 {
		t.Errorf("502s %v; want 1", got)
	}
}

// A client inventing model names cannot make the series grow without end:
// past MaxModels, every new name is counted as "other", and no request is
// lost from the totals.
func TestMetrics_modelLabelFlood(t *testing.T) {
	m := New()
	const n = 3 * MaxModels
	for i := range n {
		m.Started("default")
		m.Finished(&core.Exchange{Route: "default", Model: fmt.Sprintf("invented-%d", i), Status: 404, Duration: time.Millisecond})
	}
	// A model seen before the bound keeps its own label afterwards.
	m.Started("default")
	m.Finished(&core.Exchange{Route: "default", Model: "invented-0", Status: 200, Duration: time.Millisecond})
	mf := scrape(t, startMetrics(t, m))
	series := len(mf["oxy_requests_total"].GetMetric())
	if series > MaxModels+2 {
		t.Errorf("%d series after %d invented models; want at most %d", series, n, MaxModels+2)
	}
	if got := sum(mf, "oxy_requests_total", map[string]string{"model": OtherModel}); got != n-MaxModels {
		t.Errorf("other = %v; want %d", got, n-MaxModels)
	}
	if got := sum(mf, "oxy_requests_total", nil); got != n+1 {
		t.Errorf("total %v; want %d", got, n+1)
	}
	if got := sum(mf, "oxy_requests_total", map[string]string{"model": "invented-0", "code": "200"}); got != 1 {
		t.Errorf("invented-0 after the bound: %v; want its own label", got)
	}
}

// Label values are valid UTF-8 and bounded in length, whatever a client sent.
func TestMetrics_labelValuesSanitised(t *testing.T) {
	m := New()
	m.Started("default")
	m.Finished(&core.Exchange{Route: "default", Model: "bad\xff\xfe" + strings.Repeat("é", 200), Caller: "alice", Status: 200})
	mf := scrape(t, startMetrics(t, m))
	for _, s := range mf["oxy_requests_total"].GetMetric() {
		for _, l := range s.GetLabel() {
			if l.GetName() == "model" && (len(l.GetValue()) > maxLabelLen || !strings.HasPrefix(l.GetValue(), "bad\uFFFD")) {
				t.Errorf("model label %q (%d bytes)", l.GetValue(), len(l.GetValue()))
			}
		}
	}
}

// TestMetrics_keyPool drives a route with two real keys whose first answers
// 429: the scrape shows the retry, the rest, and which key is available.
func TestMetrics_keyPool(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("Authorization") == "Bearer sk-first-key-0001" {
			w.Header().Set("Retry-After", "30")
			http.Error(w, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`, http.StatusTooManyRequests)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, openAIJSON)
	}))
	defer up.Close()
	env := map[string]string{"OXY_TARGET": up.URL, "OXY_UPSTREAM_API_KEY": "sk-first-key-0001,sk-second-key-0002", "OXY_ALLOW_CIDRS": "127.0.0.1"}
	cfg, err := core.FromEnv(testkit.Lookup(env), core.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	px := httptest.NewServer(core.New(cfg, nil, nil, core.WithObserver(m), core.WithKeyObserver(m)))
	defer px.Close()
	res, err := http.Post(px.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"gpt-4o-mini"}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d; want 200 from the second key", res.StatusCode)
	}
	mf := scrape(t, startMetrics(t, m))
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"oxy_upstream_key_available", map[string]string{"route": "default", "key": "#1"}, 0},
		{"oxy_upstream_key_available", map[string]string{"route": "default", "key": "#2"}, 1},
		{"oxy_retries_total", map[string]string{"route": "default", "reason": "rate_limited"}, 1},
		{"oxy_upstream_key_rests_total", map[string]string{"route": "default", "key": "#1", "reason": "rate_limited"}, 1},
	} {
		if got := sum(mf, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v; want %v", c.name, c.labels, got, c.want)
		}
	}
	if f := mf["oxy_upstream_key_available"]; f == nil || len(f.GetMetric()) != 2 {
		t.Errorf("oxy_upstream_key_available has %d series; want one per key", len(f.GetMetric()))
	}
}

// failingLimiter is a limits' store that cannot be reached.
type failingLimiter struct{}

func (failingLimiter) Admit(context.Context, core.Budget, time.Time) (core.Verdict, error) {
	return core.Verdict{}, fmt.Errorf("dial tcp 127.0.0.1:1: connect: connection refused")
}

func (failingLimiter) Done(context.Context, core.Budget, string, int64, time.Time) error {
	return fmt.Errorf("down")
}

// TestMetrics_budgets proves oxy_limited_total{caller,limit},
// oxy_budget_remaining{caller,limit} and oxy_limits_unchecked_total{caller}
// against a proxy with budgets: in memory, with a store that is down (fail
// open), and with OXY_LIMITS_FAIL_CLOSED.
func TestMetrics_budgets(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(mockVendor))
	defer up.Close()
	const alice, second = "sk-proxy-aaaaaaaaaaaaaaaaaaaa", "sk-proxy-bbbbbbbbbbbbbbbbbbbb"
	base := map[string]string{
		"OXY_TARGET": up.URL, "OXY_UPSTREAM_API_KEY": "sk-real",
		"OXY_AUTH_KEYS": "alice:" + alice + "," + second,
		"OXY_LIMITS":    "alice=rpm:2/tpd:1000, *=concurrent:5",
	}
	m := New()
	for _, tc := range []struct {
		name    string
		env     map[string]string
		limiter core.Limiter
	}{
		{"memory", nil, nil},
		{"store down, fail open", nil, failingLimiter{}},
		{"store down, fail closed", map[string]string{"OXY_REDIS_URL": "redis://127.0.0.1:1", "OXY_LIMITS_FAIL_CLOSED": "true"}, failingLimiter{}},
	} {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range tc.env {
			env[k] = v
		}
		cfg, err := core.FromEnv(testkit.Lookup(env), core.Options{})
		if err != nil {
			t.Fatal(err)
		}
		opts := []core.Option{core.WithObserver(m)}
		if tc.limiter != nil {
			opts = append(opts, core.WithLimiter(tc.limiter))
		}
		px := httptest.NewServer(core.New(cfg, nil, nil, opts...))
		for _, key := range []string{alice, alice, alice, second} {
			req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini"}`))
			req.Header.Set("Authorization", "Bearer "+key)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		px.Close()
		if tc.name == "memory" {
			mf := scrape(t, startMetrics(t, m))
			for _, c := range []struct {
				name   string
				labels map[string]string
				want   float64
			}{
				{"oxy_limited_total", map[string]string{"caller": "alice", "limit": "rpm"}, 1},
				{"oxy_limited_total", map[string]string{"caller": "key#2"}, 0},
				// At the third request: no request left this minute, and
				// 1000 - 2 x 120 tokens today.
				{"oxy_budget_remaining", map[string]string{"caller": "alice", "limit": "rpm"}, 0},
				{"oxy_budget_remaining", map[string]string{"caller": "alice", "limit": "tpd"}, 760},
				{"oxy_budget_remaining", map[string]string{"caller": "key#2", "limit": "concurrent"}, 4},
				{"oxy_budget_remaining", map[string]string{"caller": "alice", "limit": "concurrent"}, 0},
			} {
				if got := sum(mf, c.name, c.labels); got != c.want {
					t.Errorf("%s: %s%v = %v; want %v", tc.name, c.name, c.labels, got, c.want)
				}
			}
		}
	}
	mf := scrape(t, startMetrics(t, m))
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		// Fail open: all four served unchecked.
		{"oxy_limits_unchecked_total", map[string]string{"caller": "alice"}, 3},
		{"oxy_limits_unchecked_total", map[string]string{"caller": "key#2"}, 1},
		// Fail closed: all four refused.
		{"oxy_limited_total", map[string]string{"caller": "alice", "limit": "unavailable"}, 3},
		{"oxy_limited_total", map[string]string{"caller": "key#2", "limit": "unavailable"}, 1},
		{"oxy_limited_total", map[string]string{"caller": "alice", "limit": "rpm"}, 1},
		{"oxy_requests_total", map[string]string{"caller": "alice", "code": "429"}, 1},
		{"oxy_requests_total", map[string]string{"code": "503"}, 4},
	} {
		if got := sum(mf, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v; want %v", c.name, c.labels, got, c.want)
		}
	}
}
