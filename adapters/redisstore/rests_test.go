package redisstore

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/adapters/redisstore/redistest"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// TestKeyRests_semantics proves that the Redis rests behave as core's
// in-memory ones: a rest starts once, a later end is kept, an earlier one
// ignored, and a key never rested reads as available.
func TestKeyRests_semantics(t *testing.T) {
	srv := redistest.Start(t)
	r := newStore(t, srv.URL(4), Options{RestsCacheTTL: -1}).KeyRests()
	ctx := context.Background()
	now := time.Now()
	if started, err := r.Rest(ctx, "openai", 2, now.Add(time.Minute)); err != nil || !started {
		t.Fatalf("first rest: started %v, %v; want true", started, err)
	}
	if started, _ := r.Rest(ctx, "openai", 2, now.Add(30*time.Second)); started {
		t.Error("second rest of a resting key: started; want false (logged once)")
	}
	_, _ = r.Rest(ctx, "openai", 2, now.Add(2*time.Minute))
	until := make([]time.Time, 3)
	if err := r.Resting(ctx, "openai", until); err != nil {
		t.Fatal(err)
	}
	if !until[0].IsZero() || until[1].UnixMilli() != now.Add(2*time.Minute).UnixMilli() || !until[2].IsZero() {
		t.Errorf("Resting = %v; want only key 2, until the later end", until)
	}
	other := make([]time.Time, 3)
	_ = r.Resting(ctx, "anthropic", other)
	if !other[1].IsZero() {
		t.Error("a rest of one route shows on another")
	}
	if reply, _ := srv.Do("PTTL", "oxy:rests:{openai}"); !strings.HasPrefix(reply, ":") || reply == ":-1" {
		t.Errorf("PTTL of the rests = %q; want an expiry", reply)
	}
}

// TestKeyRests_sharedByInstances proves that a key one instance's pool rests
// is resting for another instance's pool of the same route at once, and that
// the rest is started (logged) by one instance only.
func TestKeyRests_sharedByInstances(t *testing.T) {
	srv := redistest.Start(t)
	a := newStore(t, srv.URL(5), Options{}).KeyRests()
	b := newStore(t, srv.URL(5), Options{}).KeyRests()
	keys := []core.Secret{"sk-one-0123456789", "sk-two-0123456789", "sk-three-0123456789"}
	poolB := core.NewKeyPool("openai", keys, core.KeyPoolOptions{Rests: b})
	for _, s := range poolB.Status(context.Background()) {
		if !s.Available {
			t.Fatalf("before any rest: %+v", s)
		}
	}
	// Instance A's upstream refused key #2: it rests it for 10 minutes.
	if started, _ := a.Rest(context.Background(), "openai", 2, time.Now().Add(10*time.Minute)); !started {
		t.Fatal("A's rest not started")
	}
	// A fresh instance sees it at once; B, whose cache is older than the
	// rest, within its cache time (a second).
	c := newStore(t, srv.URL(5), Options{}).KeyRests()
	poolC := core.NewKeyPool("openai", keys, core.KeyPoolOptions{Rests: c})
	st := poolC.Status(context.Background())
	if !st[0].Available || st[1].Available || !st[2].Available {
		t.Errorf("instance C's view %+v; want #2 resting, #1 and #3 available", st)
	}
	if !testkit.WaitUntil(5*time.Second, func() bool { return !poolB.Status(context.Background())[1].Available }) {
		t.Error("instance B never saw #2 resting")
	}
	if started, _ := b.Rest(context.Background(), "openai", 2, time.Now().Add(10*time.Minute)); started {
		t.Error("B's rest of the key A rests: started; want false (one log line across instances)")
	}
}

// TestKeyRests_redisDown proves that while Redis is down the rests this
// instance records still hold (kept in the process), nothing fails, the log
// says so once, and the rests are shared again once Redis is back.
func TestKeyRests_redisDown(t *testing.T) {
	srv := redistest.Start(t)
	logs := &testkit.LogBuffer{}
	s, err := New(srv.URL(6), slog.New(slog.NewTextHandler(logs, nil)), Options{RestsCacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	r := s.KeyRests()
	ctx := context.Background()
	srv.Stop()
	if started, err := r.Rest(ctx, "openai", 1, time.Now().Add(time.Minute)); err != nil || !started {
		t.Fatalf("rest with Redis down: %v %v; want started, no error", started, err)
	}
	until := make([]time.Time, 2)
	if err := r.Resting(ctx, "openai", until); err != nil || !until[0].After(time.Now()) || !until[1].IsZero() {
		t.Errorf("Resting with Redis down: %v %v; want key 1 resting (kept in the process)", until, err)
	}
	if n := strings.Count(logs.String(), "redis unreachable"); n != 1 {
		t.Errorf("%d log lines say Redis is down; want 1:\n%s", n, logs)
	}
	srv.Restart()
	other := newStore(t, srv.URL(6), Options{}).KeyRests()
	if !testkit.WaitUntil(10*time.Second, func() bool {
		_, _ = r.Rest(ctx, "openai", 2, time.Now().Add(time.Minute))
		u := make([]time.Time, 2)
		_ = other.Resting(ctx, "openai", u)
		return u[1].After(time.Now())
	}) {
		t.Fatalf("rests not shared after Redis came back:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "redis reachable again") {
		t.Errorf("log lacks the recovery:\n%s", logs)
	}
}
