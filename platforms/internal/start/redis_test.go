package start

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/adapters/redisstore/redistest"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// idleRunner is a runner that serves nothing; Prepare's handler is driven
// through httptest instead.
type idleRunner struct{}

func (idleRunner) Run(ctx context.Context, _ http.Handler) error { <-ctx.Done(); return nil }
func (idleRunner) LongLived() bool                               { return false }

// TestPrepare_budgetsInRedis proves that the start-up every build shares
// builds the Redis limiter from OXY_REDIS_URL: two handlers prepared from
// the same settings, as two instances of any build, share one budget, and
// the store is closed when the runner returns.
func TestPrepare_budgetsInRedis(t *testing.T) {
	redis := redistest.Start(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "{}") }))
	defer up.Close()
	const key = "pk-alice-0123456789abcdef"
	env := map[string]string{"OXY_TARGET": up.URL, "OXY_AUTH_KEYS": "alice:" + key, "OXY_UPSTREAM_API_KEY": "sk-real-0123456789abcdef",
		"OXY_LIMITS": "alice=rpm:5", "OXY_REDIS_URL": redis.URL(1)}
	p := Platform{Name: "test", NewRunner: func(core.Config, *slog.Logger, core.LookupFunc) (Runner, error) { return idleRunner{}, nil }}
	var handlers []http.Handler
	var runners []Runner
	logs := &testkit.LogBuffer{}
	for range 2 {
		r, h, err := Prepare(p, nil, testkit.Lookup(env), testkit.Environ(env), io.Discard, logs)
		if err != nil {
			t.Fatal(err)
		}
		handlers, runners = append(handlers, h), append(runners, r)
	}
	codes := map[int]int{}
	for i := range 12 {
		req := httptest.NewRequest("GET", "/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		handlers[i%2].ServeHTTP(rec, req)
		codes[rec.Code]++
	}
	if codes[200] != 5 || codes[429] != 7 {
		t.Errorf("statuses through two prepared handlers %v; want 5 x 200, 7 x 429", codes)
	}
	if !strings.Contains(logs.String(), "msg=\"shared in Redis\"") {
		t.Errorf("startup log lacks the Redis line:\n%s", logs)
	}
	// Run returns when its context ends, and the store is closed then.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, r := range runners {
		if err := r.Run(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if _, ok := r.(cleanupRunner); !ok {
			t.Fatalf("runner %T does not close the store", r)
		}
	}
}

// TestPrepare_badRedisURL proves that a URL the Redis client refuses stops
// start-up with the reason, never the password.
func TestPrepare_badRedisURL(t *testing.T) {
	env := map[string]string{"OXY_AUTH_KEYS": "alice:pk-alice-0123456789abcdef", "OXY_UPSTREAM_API_KEY": "sk-real-0123456789abcdef",
		"OXY_LIMITS": "alice=rpm:5", "OXY_REDIS_URL": "redis://:hunter2@127.0.0.1:6379/0?pool_size=many"}
	p := Platform{Name: "test", NewRunner: func(core.Config, *slog.Logger, core.LookupFunc) (Runner, error) { return idleRunner{}, nil }}
	_, _, err := Prepare(p, nil, testkit.Lookup(env), testkit.Environ(env), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "OXY_REDIS_URL: redis: invalid pool_size number") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err = %v; want the reason under OXY_REDIS_URL, without the password", err)
	}
}

// TestPrepare_keyRestsInRedis proves that with OXY_REDIS_URL the key pools
// of every instance share their resting keys: after instance A's upstream
// refuses key #1 with 429, instance B never sends with key #1.
func TestPrepare_keyRestsInRedis(t *testing.T) {
	redis := redistest.Start(t)
	var mu sync.Mutex
	var seen []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		mu.Lock()
		seen = append(seen, auth)
		mu.Unlock()
		if auth == "Bearer sk-one-0123456789abcdef" {
			w.Header().Set("Retry-After", "600")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`)
			return
		}
		_, _ = io.WriteString(w, "{}")
	}))
	defer up.Close()
	const key = "pk-alice-0123456789abcdef"
	env := map[string]string{"OXY_TARGET": up.URL, "OXY_AUTH_KEYS": "alice:" + key,
		"OXY_UPSTREAM_API_KEY": "sk-one-0123456789abcdef,sk-two-0123456789abcdef", "OXY_REDIS_URL": redis.URL(2)}
	p := Platform{Name: "test", NewRunner: func(core.Config, *slog.Logger, core.LookupFunc) (Runner, error) { return idleRunner{}, nil }}
	logs := &testkit.LogBuffer{}
	serve := func(h http.Handler) int {
		req := httptest.NewRequest("GET", "/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	_, a, err := Prepare(p, nil, testkit.Lookup(env), testkit.Environ(env), io.Discard, logs)
	if err != nil {
		t.Fatal(err)
	}
	if code := serve(a); code != 200 {
		t.Fatalf("instance A: %d; want 200 (key #1 refused, retried with #2)", code)
	}
	mu.Lock()
	if len(seen) != 2 || seen[0] != "Bearer sk-one-0123456789abcdef" {
		t.Fatalf("instance A's attempts %q; want #1 then #2", seen)
	}
	seen = nil
	mu.Unlock()
	// Instance B starts after the rest: its first pick would be #1.
	_, b, err := Prepare(p, nil, testkit.Lookup(env), testkit.Environ(env), io.Discard, logs)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if code := serve(b); code != 200 {
			t.Fatalf("instance B: %d", code)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seen {
		if s != "Bearer sk-two-0123456789abcdef" {
			t.Errorf("instance B sent with %q; want only key #2 while #1 rests (shared in Redis)", s)
		}
	}
	if strings.Contains(logs.String(), "sk-one") || !strings.Contains(logs.String(), "routes_with_key_pools=1") {
		t.Errorf("startup log:\n%s", logs)
	}
}
