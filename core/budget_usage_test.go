package core

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBudgets_dailyQuotaChargedByMeteredUsage proves that the daily quota is
// charged with the tokens metered from the answers, streamed (the final
// usage chunk of stream_options.include_usage) and not (the JSON usage):
// 120 + 90 tokens of a 200-token quota, and the next request is refused
// with insufficient_quota before reaching the upstream.
func TestBudgets_dailyQuotaChargedByMeteredUsage(t *testing.T) {
	up := newAccessUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, `data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}`+"\n\n")
			_, _ = io.WriteString(w, `data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":40,"total_tokens":90}}`+"\n\n")
			_, _ = io.WriteString(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"c0","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120}}`)
	})
	now := at("2026-12-01T10:00:00Z")
	l := NewMemoryLimiter()
	p := startBudgetProxy(t, up, limitsEnv("alice=tpd:200"), l, func() time.Time { return now })
	post := func(body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", p.srv.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header = alice()
		req.Header.Set("Content-Type", "application/json")
		res, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	if res, _ := post(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`); res.StatusCode != 200 ||
		res.Header.Get("X-Oxy-Ratelimit-Remaining-Tokens-Day") != "200" {
		t.Fatalf("first: %d %v", res.StatusCode, res.Header)
	}
	res, _ := post(`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`)
	if res.StatusCode != 200 || res.Header.Get("X-Oxy-Ratelimit-Remaining-Tokens-Day") != "80" {
		t.Fatalf("streamed, after 120 tokens: %d remaining %q; want 200, 80", res.StatusCode, res.Header.Get("X-Oxy-Ratelimit-Remaining-Tokens-Day"))
	}
	res, body := post(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
	if res.StatusCode != 429 || acError(t, body).Code != "insufficient_quota" || !strings.Contains(body, "210 used") {
		t.Errorf("after 120 + 90 of 200 tokens: %d %s; want 429 insufficient_quota, 210 used", res.StatusCode, body)
	}
	if n := up.hits.Load(); n != 2 {
		t.Errorf("upstream hit %d times; want 2", n)
	}
	// The next UTC day starts afresh.
	now = at("2026-12-02T00:00:01Z")
	if res, _ := post(`{"model":"gpt-4o-mini","messages":[]}`); res.StatusCode != 200 {
		t.Errorf("next day: %d; want 200", res.StatusCode)
	}
}
