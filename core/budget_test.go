package core

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// budgetProxy is a proxy with OXY_LIMITS in front of up, on 127.0.0.1, with
// its limiter and clock chosen by the test (nil: in memory, time.Now).
func startBudgetProxy(t *testing.T, up *accessUpstream, env map[string]string, limiter Limiter, now func() time.Time) *accessProxy {
	t.Helper()
	full := map[string]string{"OXY_LOG_LEVEL": "debug", "OXY_TARGET": up.srv.URL}
	for k, v := range env {
		full[k] = v
	}
	cfg, err := FromEnv(testkit.Lookup(full), Options{Environ: testkit.Environ(full)})
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	p := &accessProxy{log: &testkit.LogBuffer{}}
	var opts []Option
	if limiter != nil {
		opts = append(opts, WithLimiter(limiter))
	}
	h := New(cfg, NewLogger(cfg, p.log), nil, opts...)
	if now != nil {
		h.budgets.now = now
	}
	p.srv = httptest.NewServer(h)
	tr := &http.Transport{MaxIdleConnsPerHost: 100}
	p.client = &http.Client{Transport: tr}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		p.srv.Close()
	})
	return p
}

func alice() http.Header { return acHeader("Authorization", "Bearer "+testProxyKey) }
func key2() http.Header  { return acHeader("Authorization", "Bearer "+testProxyKey2) }

// acError decodes an OpenAI-shaped error body.
func acError(t *testing.T, body string) APIError {
	t.Helper()
	var e struct{ Error *APIError }
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == nil {
		t.Fatalf("body %q is not an OpenAI-shaped error (%v)", body, err)
	}
	return *e.Error
}

// TestBudgets_rpmRefusedWith429 proves the refusal: an OpenAI-shaped 429 of
// type rate_limit_exceeded with Retry-After, no upstream call, a log line
// naming the caller and the limit but never the key, and budgets per key.
func TestBudgets_rpmRefusedWith429(t *testing.T) {
	up := newAccessUpstream(t, nil)
	now := at("2026-12-01T12:00:45.5Z")
	p := startBudgetProxy(t, up, limitsEnv("alice=rpm:2, *=rpm:1"), nil, func() time.Time { return now })
	for i := range 2 {
		res, _ := p.do(t, "GET", "/v1/models", alice())
		if res.StatusCode != 200 {
			t.Fatalf("request %d: status %d; want 200", i+1, res.StatusCode)
		}
		if got, want := res.Header.Get("X-Oxy-Ratelimit-Remaining-Requests"), []string{"1", "0"}[i]; got != want ||
			res.Header.Get("X-Oxy-Ratelimit-Limit-Requests") != "2" {
			t.Errorf("request %d: limit %q remaining %q; want 2, %s", i+1, res.Header.Get("X-Oxy-Ratelimit-Limit-Requests"), got, want)
		}
	}
	res, body := p.do(t, "GET", "/v1/models", alice())
	e := acError(t, body)
	if res.StatusCode != http.StatusTooManyRequests || e.Type != "rate_limit_exceeded" || e.Code != "rate_limit_exceeded" {
		t.Fatalf("3rd request: %d %s; want 429 rate_limit_exceeded", res.StatusCode, body)
	}
	if !strings.Contains(e.Message, "2 requests per minute (rpm); try again in 15s") {
		t.Errorf("message %q; want the limit and the wait", e.Message)
	}
	if res.Header.Get("Retry-After") != "15" || res.Header.Get("Retry-After-Ms") != "14500" {
		t.Errorf("Retry-After %q, retry-after-ms %q; want 15 and 14500 (to the end of the minute)",
			res.Header.Get("Retry-After"), res.Header.Get("Retry-After-Ms"))
	}
	if res.Header.Get("X-Oxy-Ratelimit-Remaining-Requests") != "0" {
		t.Errorf("remaining on the 429: %q; want 0", res.Header.Get("X-Oxy-Ratelimit-Remaining-Requests"))
	}
	if n := up.hits.Load(); n != 2 {
		t.Errorf("upstream hit %d times; want 2 (a refused request never reaches it)", n)
	}
	// "*" gives the unnamed key its own budget of 1.
	if res, _ := p.do(t, "GET", "/v1/models", key2()); res.StatusCode != 200 {
		t.Errorf("key#2's first request: %d; want 200 (its own budget)", res.StatusCode)
	}
	if res, _ := p.do(t, "GET", "/v1/models", key2()); res.StatusCode != 429 {
		t.Errorf("key#2's second request: %d; want 429 (*=rpm:1)", res.StatusCode)
	}
	now = now.Add(15 * time.Second) // 12:01:00.5, a new minute
	if res, _ := p.do(t, "GET", "/v1/models", alice()); res.StatusCode != 200 {
		t.Errorf("next minute: %d; want 200 (the window reset)", res.StatusCode)
	}
	logs := p.logs()
	var refused []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `rejected=rate_limit_exceeded`) {
			refused = append(refused, map[string]any{"line": line})
			if !strings.Contains(line, "limit=rpm") || !(strings.Contains(line, "caller=alice") || strings.Contains(line, "caller=key#2")) {
				t.Errorf("refusal logged without caller and limit: %s", line)
			}
		}
	}
	if len(refused) != 2 {
		t.Errorf("%d refusals logged; want 2:\n%s", len(refused), logs)
	}
	for _, secret := range []string{testProxyKey, testProxyKey2, testRealKey} {
		if strings.Contains(logs, secret) {
			t.Errorf("log shows a key:\n%s", logs)
		}
	}
}

// TestBudgets_rpmExactUnderConcurrentClients sends 60 requests at once for
// a budget of 25: exactly 25 reach the upstream.
func TestBudgets_rpmExactUnderConcurrentClients(t *testing.T) {
	up := newAccessUpstream(t, nil)
	now := at("2026-12-01T12:00:00Z") // fixed: no minute boundary mid-test
	p := startBudgetProxy(t, up, limitsEnv("alice=rpm:25"), nil, func() time.Time { return now })
	codes := sendAtOnce(t, p, 60, alice)
	if codes[200] != 25 || codes[429] != 35 {
		t.Errorf("statuses %v; want 25 x 200 and 35 x 429", codes)
	}
	if n := up.hits.Load(); n != 25 {
		t.Errorf("upstream hit %d times; want 25", n)
	}
}

// sendAtOnce sends n requests from n goroutines released together and
// counts the statuses.
func sendAtOnce(t *testing.T, p *accessProxy, n int, header func() http.Header) map[int]int {
	t.Helper()
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("GET", p.srv.URL+"/v1/models", nil)
			req.Header = header()
			res, err := p.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			mu.Lock()
			codes[res.StatusCode]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return codes
}

// TestBudgets_concurrentLimit holds requests open at the upstream: the one
// over the limit gets 429 at once, and a slot frees when a request ends,
// also when the upstream breaks off its answer.
func TestBudgets_concurrentLimit(t *testing.T) {
	release := make(chan struct{})
	var entered atomic.Int64
	up := newAccessUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		entered.Add(1)
		if r.URL.Path == "/v1/abort" {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "partial")
			panic(http.ErrAbortHandler) // the upstream dies mid-body
		}
		<-release
		_, _ = io.WriteString(w, "{}")
	})
	p := startBudgetProxy(t, up, limitsEnv("alice=concurrent:3"), nil, nil)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, body := p.do(t, "GET", "/v1/slow", alice()); res.StatusCode != 200 {
				t.Errorf("held request: %d %s", res.StatusCode, body)
			}
		}()
	}
	waitFor(t, func() bool { return entered.Load() == 3 })
	res, body := p.do(t, "GET", "/v1/models", alice())
	if res.StatusCode != 429 || acError(t, body).Code != "rate_limit_exceeded" || res.Header.Get("Retry-After") != "1" ||
		res.Header.Get("X-Oxy-Ratelimit-Remaining-Concurrent") != "0" {
		t.Errorf("4th in flight: %d %v %s; want 429, Retry-After 1", res.StatusCode, res.Header, body)
	}
	if !strings.Contains(body, "3 requests in flight") {
		t.Errorf("message %s; want the limit", body)
	}
	close(release)
	wg.Wait()
	// Two aborted answers in a row: each frees its slot.
	for range 4 {
		req, _ := http.NewRequest("GET", p.srv.URL+"/v1/abort", nil)
		req.Header = alice()
		if res, err := p.client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
	codes := sendAtOnce(t, p, 3, alice)
	if codes[200] != 3 {
		t.Errorf("after every request ended: %v; want 3 x 200 (slots freed, aborted answers too)", codes)
	}
}

// TestBudgets_tokenLimitsCheckedBefore proves that spent token budgets
// refuse the next request before the upstream: tpm with rate_limit_exceeded,
// tpd with insufficient_quota and the header telling OpenAI's SDKs not to
// retry.
func TestBudgets_tokenLimitsCheckedBefore(t *testing.T) {
	up := newAccessUpstream(t, nil)
	l := NewMemoryLimiter()
	now := at("2026-12-01T21:30:00Z")
	p := startBudgetProxy(t, up, limitsEnv("alice=tpm:1000/tpd:5000"), l, func() time.Time { return now })
	b := Budget{Caller: "alice", Limits: Limits{TPM: 1000, TPD: 5000}}

	res, _ := p.do(t, "GET", "/v1/models", alice())
	if res.StatusCode != 200 || res.Header.Get("X-Oxy-Ratelimit-Remaining-Tokens") != "1000" ||
		res.Header.Get("X-Oxy-Ratelimit-Limit-Tokens-Day") != "5000" || res.Header.Get("X-Oxy-Ratelimit-Remaining-Tokens-Day") != "5000" {
		t.Fatalf("fresh budget: %d %v", res.StatusCode, res.Header)
	}
	_ = l.Done(context.Background(), b, "", 1000, now)
	res, body := p.do(t, "GET", "/v1/models", alice())
	if e := acError(t, body); res.StatusCode != 429 || e.Code != "rate_limit_exceeded" || res.Header.Get("X-Should-Retry") != "" ||
		!strings.Contains(e.Message, "1000 tokens per minute (tpm), 1000 used") || res.Header.Get("Retry-After") != "60" {
		t.Errorf("tpm spent: %d %v %s; want 429 rate_limit_exceeded, Retry-After 60", res.StatusCode, res.Header, body)
	}
	for range 4 {
		now = now.Add(time.Minute)
		_ = l.Done(context.Background(), b, "", 1000, now)
	}
	res, body = p.do(t, "GET", "/v1/models", alice())
	e := acError(t, body)
	if res.StatusCode != 429 || e.Type != "insufficient_quota" || e.Code != "insufficient_quota" ||
		res.Header.Get("X-Should-Retry") != "false" || res.Header.Get("Retry-After") != "8760" {
		t.Errorf("tpd spent at 21:34: %d %v %s; want 429 insufficient_quota, x-should-retry false, Retry-After 8760 (to 00:00 UTC)",
			res.StatusCode, res.Header, body)
	}
	if !strings.Contains(e.Message, "renews at 00:00 UTC, in 2h26m;") {
		t.Errorf("message %q", e.Message)
	}
	if n := up.hits.Load(); n != 1 {
		t.Errorf("upstream hit %d times; want 1", n)
	}
	if logs := p.logs(); !strings.Contains(logs, "rejected=insufficient_quota") || !strings.Contains(logs, "limit=tpd") {
		t.Errorf("log lacks the quota refusal:\n%s", logs)
	}
}

// TestBudgets_ownHeadersNeverCollide proves that the vendor's x-ratelimit-*
// pass unchanged beside the proxy's x-oxy-ratelimit-*, and that budget
// headers from an upstream (another instance of the proxy) are replaced, not
// doubled. A caller without limits gets none.
func TestBudgets_ownHeadersNeverCollide(t *testing.T) {
	up := newAccessUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Ratelimit-Limit-Requests", "10000")
		w.Header().Set("X-Ratelimit-Remaining-Requests", "9999")
		w.Header().Set("X-Oxy-Ratelimit-Limit-Requests", "77")
		w.Header().Set("X-Oxy-Ratelimit-Remaining-Requests", "76")
		_, _ = io.WriteString(w, "{}")
	})
	p := startBudgetProxy(t, up, limitsEnv("alice=rpm:5"), nil, nil)
	res, _ := p.do(t, "GET", "/v1/models", alice())
	if got := res.Header.Values("X-Ratelimit-Limit-Requests"); len(got) != 1 || got[0] != "10000" {
		t.Errorf("vendor's limit header %q; want 10000 unchanged", got)
	}
	if got := res.Header.Values("X-Oxy-Ratelimit-Limit-Requests"); len(got) != 1 || got[0] != "5" {
		t.Errorf("proxy's limit header %q; want one value, 5", got)
	}
	if got := res.Header.Values("X-Oxy-Ratelimit-Remaining-Requests"); len(got) != 1 || got[0] != "4" {
		t.Errorf("proxy's remaining header %q; want one value, 4", got)
	}
	res, _ = p.do(t, "GET", "/v1/models", key2())
	if got := res.Header.Values("X-Oxy-Ratelimit-Limit-Requests"); len(got) != 1 || got[0] != "77" {
		t.Errorf("caller without limits: %q; want the upstream's header passed as it is", got)
	}
}

// failingLimiter fails every call, as a store that is down does.
type failingLimiter struct{ calls atomic.Int64 }

func (f *failingLimiter) Admit(context.Context, Budget, time.Time) (Verdict, error) {
	f.calls.Add(1)
	return Verdict{}, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
}

func (f *failingLimiter) Done(context.Context, Budget, string, int64, time.Time) error {
	f.calls.Add(1)
	return errors.New("down")
}

// switchLimiter fails while down is set, and is a MemoryLimiter otherwise.
type switchLimiter struct {
	failingLimiter
	mem  *MemoryLimiter
	down atomic.Bool
}

func (s *switchLimiter) Admit(ctx context.Context, b Budget, now time.Time) (Verdict, error) {
	if s.down.Load() {
		return s.failingLimiter.Admit(ctx, b, now)
	}
	return s.mem.Admit(ctx, b, now)
}

func (s *switchLimiter) Done(ctx context.Context, b Budget, lease string, tokens int64, now time.Time) error {
	if s.down.Load() {
		return s.failingLimiter.Done(ctx, b, lease, tokens, now)
	}
	return s.mem.Done(ctx, b, lease, tokens, now)
}

// TestBudgets_storeDownFailsOpen proves fail open: requests pass, the log
// says so once, the store is not asked again within storeBackoff, and once
// it answers again the budget is enforced and the log says so once.
func TestBudgets_storeDownFailsOpen(t *testing.T) {
	up := newAccessUpstream(t, nil)
	l := &switchLimiter{mem: NewMemoryLimiter()}
	l.down.Store(true)
	var clock atomic.Int64
	clock.Store(at("2026-12-01T12:00:00Z").UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	p := startBudgetProxy(t, up, limitsEnv("alice=rpm:2"), l, now)
	for i := range 5 {
		if res, _ := p.do(t, "GET", "/v1/models", alice()); res.StatusCode != 200 {
			t.Fatalf("request %d with the store down: %d; want 200 (fail open)", i+1, res.StatusCode)
		}
	}
	if n := l.calls.Load(); n != 1 {
		t.Errorf("store asked %d times within its backoff; want 1", n)
	}
	// Requests while the store rests do not extend its rest: one second
	// after the failure it is asked again.
	clock.Add(int64(storeBackoff / 2))
	p.do(t, "GET", "/v1/models", alice())
	clock.Add(int64(storeBackoff / 2))
	for range 3 {
		p.do(t, "GET", "/v1/models", alice())
	}
	if n := l.calls.Load(); n != 2 {
		t.Errorf("store asked %d times in all, a second after it failed; want 2", n)
	}
	l.down.Store(false)
	clock.Add(int64(storeBackoff))
	codes := sendAtOnce(t, p, 5, alice)
	if codes[200] != 2 || codes[429] != 3 {
		t.Errorf("store back: %v; want the budget enforced again (2 x 200, 3 x 429)", codes)
	}
	logs := p.logs()
	if n := strings.Count(logs, "limits store unreachable: serving requests without limits"); n != 1 {
		t.Errorf("%d lines say the store is down; want 1:\n%s", n, logs)
	}
	if n := strings.Count(logs, "limits store reachable again"); n != 1 {
		t.Errorf("%d lines say the store is back; want 1:\n%s", n, logs)
	}
	// Each request served without its limits says so in its own line.
	if n := strings.Count(logs, "limits_unchecked=true"); n != 9 {
		t.Errorf("%d request lines say limits_unchecked; want the 9 served while the store was down:\n%s", n, logs)
	}
}

// TestBudgets_storeDownFailsClosed proves OXY_LIMITS_FAIL_CLOSED: 503
// limits_unavailable, no upstream call; callers without limits still pass.
func TestBudgets_storeDownFailsClosed(t *testing.T) {
	up := newAccessUpstream(t, nil)
	env := limitsEnv("alice=rpm:100")
	env["OXY_REDIS_URL"] = "redis://127.0.0.1:1"
	env["OXY_LIMITS_FAIL_CLOSED"] = "true"
	p := startBudgetProxy(t, up, env, &failingLimiter{}, nil)
	res, body := p.do(t, "GET", "/v1/models", alice())
	if res.StatusCode != 503 || acError(t, body).Code != "limits_unavailable" || res.Header.Get("Retry-After") != "1" {
		t.Errorf("store down, fail closed: %d %v %s; want 503 limits_unavailable, Retry-After 1", res.StatusCode, res.Header, body)
	}
	if res, _ := p.do(t, "GET", "/v1/models", key2()); res.StatusCode != 200 {
		t.Errorf("caller without limits: %d; want 200", res.StatusCode)
	}
	if n := up.hits.Load(); n != 1 {
		t.Errorf("upstream hit %d times; want 1 (only the caller without limits)", n)
	}
	if logs := p.logs(); strings.Count(logs, "refusing requests of keys with limits with 503") != 1 ||
		!strings.Contains(logs, "rejected=limits_unavailable") || strings.Contains(logs, testProxyKey) {
		t.Errorf("log:\n%s", logs)
	}
}

// TestBudgets_offWithoutLimits proves that without OXY_LIMITS nothing is
// asked and no budget header is written.
func TestBudgets_offWithoutLimits(t *testing.T) {
	up := newAccessUpstream(t, nil)
	l := &failingLimiter{}
	cfg, err := FromEnv(testkit.Lookup(map[string]string{"OXY_TARGET": up.srv.URL}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := New(cfg, nil, nil, WithLimiter(l))
	if h.budgets != nil {
		t.Fatal("budgets on without OXY_LIMITS")
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || l.calls.Load() != 0 {
		t.Errorf("status %d, limiter calls %d; want 200, 0", res.StatusCode, l.calls.Load())
	}
}

// TestLocalRefusals_keepTheConnectionAlive sends POSTs with bodies that the
// proxy refuses itself (401 for a wrong key, 429 over the budget) one after
// another on one kept-alive connection: each must be answered on it. With
// full duplex on for such answers, net/http wrote them before draining the
// unread body and the connection was often reset under the next request.
func TestLocalRefusals_keepTheConnectionAlive(t *testing.T) {
	up := newAccessUpstream(t, nil)
	p := startBudgetProxy(t, up, limitsEnv("alice=rpm:1"), nil, nil)
	var conns atomic.Int64
	trace := &httptrace.ClientTrace{GotConn: func(c httptrace.GotConnInfo) {
		if !c.Reused {
			conns.Add(1)
		}
	}}
	for i := range 40 {
		h := alice()
		if i%2 == 1 {
			h = acHeader("Authorization", "Bearer pk-wrong-0123456789abcdef")
		}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
			"POST", p.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[]}`))
		req.Header = h
		res, err := p.client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if want := []int{429, 401}[i%2]; i > 0 && res.StatusCode != want {
			t.Fatalf("request %d: %d; want %d", i+1, res.StatusCode, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 40 requests; want 1 (kept alive through the refusals)", n)
	}
}
