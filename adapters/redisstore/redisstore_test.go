package redisstore

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/adapters/redisstore/redistest"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core/limitertest"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

func newStore(t *testing.T, url string, o Options) *Store {
	t.Helper()
	s, err := New(url, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestStore_contract runs the tests every core.Limiter passes against a real
// redis-server, each on an emptied database.
func TestStore_contract(t *testing.T) {
	srv := redistest.Start(t)
	limitertest.Run(t, func(t *testing.T) core.Limiter {
		if reply, err := srv.Do("FLUSHALL"); err != nil || reply != "+OK" {
			t.Fatalf("FLUSHALL: %q %v", reply, err)
		}
		return newStore(t, srv.URL(0), Options{})
	})
}

// TestStore_instancesShareOneBudget proves that two stores (two proxy
// instances' connections) admitting at once never admit more than the
// limit together, for requests per minute and for requests in flight.
func TestStore_instancesShareOneBudget(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newStore(t, srv.URL(2), Options{}), newStore(t, srv.URL(2), Options{})
	now := time.Now()
	for _, tc := range []struct {
		budget core.Budget
		want   int
	}{
		{core.Budget{Caller: "alice", Limits: core.Limits{RPM: 40}}, 40},
		{core.Budget{Caller: "bob", Limits: core.Limits{Concurrent: 7}}, 7},
	} {
		var mu sync.Mutex
		allowed := 0
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				s := a
				if i%2 == 1 {
					s = b
				}
				v, err := s.Admit(context.Background(), tc.budget, now)
				if err != nil {
					t.Error(err)
					return
				}
				if v.Allowed {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}()
		}
		close(start)
		wg.Wait()
		if allowed != tc.want {
			t.Errorf("%s: two instances admitted %d of 100 together; want exactly %d", tc.budget.Limits, allowed, tc.want)
		}
	}
}

// TestStore_leasesOfADeadInstanceAgeOut proves that the in-flight slots of a
// process that died without ending its requests free themselves after the
// lease TTL, while a living process keeps its slots past the TTL.
func TestStore_leasesOfADeadInstanceAgeOut(t *testing.T) {
	srv := redistest.Start(t)
	const ttl = 600 * time.Millisecond
	living := newStore(t, srv.URL(3), Options{LeaseTTL: ttl})
	dying := newStore(t, srv.URL(3), Options{LeaseTTL: ttl})
	b := core.Budget{Caller: "alice", Limits: core.Limits{Concurrent: 2}}
	ctx := context.Background()
	if v, err := living.Admit(ctx, b, time.Now()); err != nil || !v.Allowed {
		t.Fatalf("first: %+v %v", v, err)
	}
	if v, err := dying.Admit(ctx, b, time.Now()); err != nil || !v.Allowed {
		t.Fatalf("second: %+v %v", v, err)
	}
	_ = dying.Close() // dies: its lease is never renewed nor handed back
	if v, _ := living.Admit(ctx, b, time.Now()); v.Allowed {
		t.Fatal("third admitted while two are in flight")
	}
	time.Sleep(3 * ttl)
	v, err := living.Admit(ctx, b, time.Now())
	if err != nil || !v.Allowed {
		t.Fatalf("after %v: %+v %v; want the dead instance's slot freed", 3*ttl, v, err)
	}
	if v, _ := living.Admit(ctx, b, time.Now()); v.Allowed {
		t.Error("living instance's renewed slot was lost past its TTL")
	}
}

// TestStore_countersExpire proves that every counter has an expiry, so
// Redis never fills up with old windows.
func TestStore_countersExpire(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.URL(0), Options{})
	b := core.Budget{Caller: "alice", Limits: core.Limits{RPM: 5, TPM: 100, TPD: 1000, Concurrent: 2}}
	now := time.Now()
	v, err := s.Admit(context.Background(), b, now)
	if err != nil || !v.Allowed {
		t.Fatal(v, err)
	}
	if err := s.Done(context.Background(), b, v.Lease, 42, now); err != nil {
		t.Fatal(err)
	}
	v2, _ := s.Admit(context.Background(), b, now)
	rpm, tpm, tpd, inflight := keys("alice", now)
	for key, max := range map[string]int{rpm: 120, tpm: 120, tpd: 90000, inflight: 31} {
		reply, err := srv.Do("TTL", key)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(reply, ":")); err != nil || n <= 0 || n > max {
			t.Errorf("TTL %s = %q; want 1-%d seconds", key, reply, max)
		}
	}
	if v2.Used.TPM != 42 || v2.Used.TPD != 42 || v2.Used.RPM != 2 {
		t.Errorf("second verdict %+v; want 42 tokens this minute and today, 2 requests", v2)
	}
}

// TestNew_badURL proves that a URL the client refuses stops start-up with
// the reason and never the password.
func TestNew_badURL(t *testing.T) {
	for _, u := range []string{"redis://:hunter2@127.0.0.1:6379/0?dial_timeot=3s", "redis://:hunter2@127.0.0.1/0?read_timeout=soon"} {
		_, err := New(u, nil, Options{})
		if err == nil {
			t.Errorf("New(%q): no error", u)
			continue
		}
		if !strings.HasPrefix(err.Error(), "OXY_REDIS_URL: ") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("New: %v; want the reason under OXY_REDIS_URL, without the password", err)
		}
	}
}

// TestProxy_redisStoppedMidTest runs the proxy with a budget in Redis, stops
// Redis in the middle, and starts it again: fail open serves on and logs it
// once, fail closed answers 503, and both enforce the budget again once
// Redis is back, without a restart.
func TestProxy_redisStoppedMidTest(t *testing.T) {
	for _, failClosed := range []bool{false, true} {
		name := "fail open"
		if failClosed {
			name = "fail closed"
		}
		t.Run(name, func(t *testing.T) {
			srv := redistest.Start(t)
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "{}") }))
			defer up.Close()
			env := map[string]string{
				"OXY_TARGET": up.URL, "OXY_AUTH_KEYS": "alice:pk-alice-0123456789abcdef", "OXY_UPSTREAM_API_KEY": "sk-real-0123456789",
				"OXY_LIMITS": "alice=rpm:1000/concurrent:2", "OXY_REDIS_URL": srv.URL(0),
			}
			if failClosed {
				env["OXY_LIMITS_FAIL_CLOSED"] = "true"
			}
			cfg, err := core.FromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, core.Options{})
			if err != nil {
				t.Fatal(err)
			}
			logs := &testkit.LogBuffer{}
			logger := slog.New(slog.NewTextHandler(logs, nil))
			store := newStore(t, cfg.RedisURL.Reveal(), Options{})
			proxy := httptest.NewServer(core.New(cfg, logger, nil, core.WithLimiter(store)))
			defer proxy.Close()
			get := func() int {
				req, _ := http.NewRequest("GET", proxy.URL+"/v1/models", nil)
				req.Header.Set("Authorization", "Bearer pk-alice-0123456789abcdef")
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				return res.StatusCode
			}
			if code := get(); code != 200 {
				t.Fatalf("Redis up: %d", code)
			}
			srv.Stop()
			want := 200
			if failClosed {
				want = 503
			}
			for i := range 5 {
				if code := get(); code != want {
					t.Fatalf("Redis down, request %d: %d; want %d", i+1, code, want)
				}
			}
			srv.Restart()
			// The proxy leaves a failing store alone for a second, then
			// reconnects by itself.
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(logs.String(), "limits store reachable again") {
				if time.Now().After(deadline) {
					t.Fatalf("Redis not used again within 10s of coming back:\n%s", logs)
				}
				if code := get(); code != 200 && code != want {
					t.Fatalf("status %d", code)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if code := get(); code != 200 {
				t.Fatalf("Redis back: %d; want 200", code)
			}
			if reply, err := srv.Do("GET", "oxy:{alice}:rpm:"+minuteID(time.Now())); err != nil || reply == "$-1" {
				t.Errorf("after Redis came back, the request was not counted in it: %q %v", reply, err)
			}
			proxy.Close()
			out := logs.String()
			if n := strings.Count(out, "limits store unreachable"); n != 1 {
				t.Errorf("%d lines say Redis is unreachable; want 1:\n%s", n, out)
			}
			if n := strings.Count(out, "limits store reachable again"); n != 1 {
				t.Errorf("%d lines say Redis is back; want 1:\n%s", n, out)
			}
		})
	}
}

func minuteID(now time.Time) string {
	id, _ := core.Window(core.LimitRPM, now)
	return strconv.FormatInt(id, 10)
}
