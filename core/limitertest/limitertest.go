// Package limitertest holds the tests that every core.Limiter must pass,
// for the in-memory limiter and for adapters such as the Redis one.
package limitertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// testDay is the UTC day the tests take place on: tomorrow, so that every
// window they use, and every absolute expiry a store derives from it (the Redis
// store's EXPIREAT), is still in the future when the test runs. A fixed date
// would make a store drop the keys at once once that date has passed.
var testDay = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)

// at returns the time hh:mm:ss on the test day plus days.
func at(days int, hms string) time.Time {
	t, err := time.Parse(time.TimeOnly, hms)
	if err != nil {
		panic(err)
	}
	return testDay.AddDate(0, 0, days).Add(time.Duration(t.Hour())*time.Hour +
		time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second)
}

// admitConcurrently asks l to admit n requests of b at once, and returns how
// many it allowed and every allowed verdict.
func admitConcurrently(t *testing.T, l core.Limiter, b core.Budget, n int, now time.Time) (int, []core.Verdict) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var allowed []core.Verdict
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			v, err := l.Admit(context.Background(), b, now)
			if err != nil {
				t.Error(err)
				return
			}
			if v.Allowed {
				mu.Lock()
				allowed = append(allowed, v)
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	return len(allowed), allowed
}

// Run runs the tests every core.Limiter must pass. newLimiter returns an
// empty limiter for one subtest.
func Run(t *testing.T, newLimiter func(t *testing.T) core.Limiter) {
	t.Run("rpm exact under concurrency", func(t *testing.T) {
		l := newLimiter(t)
		b := core.Budget{Caller: "alice", Limits: core.Limits{RPM: 37}}
		now := at(0, "12:00:10")
		if n, _ := admitConcurrently(t, l, b, 100, now); n != 37 {
			t.Errorf("allowed %d of 100 concurrent requests; want exactly 37", n)
		}
		v, _ := l.Admit(context.Background(), b, now.Add(40*time.Second))
		if v.Allowed || v.Limit != core.LimitRPM || v.RetryAfter != 10*time.Second || v.Used.RPM != 37 {
			t.Errorf("38th request: %+v; want refused by rpm, retry after 10s, 37 used", v)
		}
		other, _ := l.Admit(context.Background(), core.Budget{Caller: "bob", Limits: b.Limits}, now)
		if !other.Allowed {
			t.Error("another caller refused; budgets are per caller")
		}
	})
	t.Run("concurrent exact under concurrency, slots freed by Done", func(t *testing.T) {
		l := newLimiter(t)
		b := core.Budget{Caller: "alice", Limits: core.Limits{Concurrent: 5}}
		now := at(0, "12:00:10")
		n, allowed := admitConcurrently(t, l, b, 50, now)
		if n != 5 {
			t.Fatalf("allowed %d of 50 concurrent requests; want exactly 5", n)
		}
		v, _ := l.Admit(context.Background(), b, now)
		if v.Allowed || v.Limit != core.LimitConcurrent || v.RetryAfter != core.ConcurrencyRetryAfter {
			t.Errorf("6th request: %+v; want refused by concurrent", v)
		}
		var wg sync.WaitGroup
		for _, a := range allowed[:2] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := l.Done(context.Background(), b, a.Lease, 0, now); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		// Handing a lease back twice frees nothing more.
		_ = l.Done(context.Background(), b, allowed[0].Lease, 0, now)
		if n, _ := admitConcurrently(t, l, b, 20, now); n != 2 {
			t.Errorf("after 2 of 5 ended: allowed %d; want exactly 2", n)
		}
	})
	t.Run("tokens charged concurrently, refused at the limit", func(t *testing.T) {
		l := newLimiter(t)
		b := core.Budget{Caller: "alice", Limits: core.Limits{TPM: 100, TPD: 150}}
		now := at(0, "23:58:30")
		var wg sync.WaitGroup
		for range 99 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := l.Done(context.Background(), b, "", 1, now); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if v, _ := l.Admit(context.Background(), b, now); !v.Allowed || v.Used.TPM != 99 {
			t.Fatalf("99 of 100 tokens used: %+v; want allowed, 99 used", v)
		}
		_ = l.Done(context.Background(), b, "", 1, now)
		v, _ := l.Admit(context.Background(), b, now)
		if v.Allowed || v.Limit != core.LimitTPM || v.RetryAfter != 30*time.Second {
			t.Errorf("100 of 100 tokens used: %+v; want refused by tpm, retry after 30s", v)
		}
		// The next minute has a fresh tpm, but the day keeps its 100.
		next := at(0, "23:59:00")
		if v, _ := l.Admit(context.Background(), b, next); !v.Allowed || v.Used.TPM != 0 || v.Used.TPD != 100 {
			t.Errorf("next minute: %+v; want allowed, tpm 0, tpd 100", v)
		}
		_ = l.Done(context.Background(), b, "", 50, next)
		v, _ = l.Admit(context.Background(), b, next.Add(10*time.Second))
		if v.Allowed || v.Limit != core.LimitTPD || v.RetryAfter != 50*time.Second || v.Used.TPD != 150 {
			t.Errorf("150 of 150 daily tokens used at 23:59:10: %+v; want refused by tpd, retry after 50s (UTC midnight)", v)
		}
		if v, _ := l.Admit(context.Background(), b, at(1, "00:00:00")); !v.Allowed || v.Used.TPD != 0 {
			t.Errorf("next UTC day: %+v; want allowed with a fresh quota", v)
		}
	})
	t.Run("window resets", func(t *testing.T) {
		l := newLimiter(t)
		b := core.Budget{Caller: "alice", Limits: core.Limits{RPM: 3}}
		now := at(0, "12:00:59")
		for i := range 4 {
			v, _ := l.Admit(context.Background(), b, now)
			if v.Allowed != (i < 3) {
				t.Fatalf("request %d at 12:00:59: allowed %v", i+1, v.Allowed)
			}
		}
		if n, _ := admitConcurrently(t, l, b, 10, at(0, "12:01:00")); n != 3 {
			t.Errorf("next minute: allowed %d; want 3", n)
		}
	})
	t.Run("a refused request is not counted", func(t *testing.T) {
		l := newLimiter(t)
		b := core.Budget{Caller: "alice", Limits: core.Limits{RPM: 10, Concurrent: 1}}
		now := at(0, "12:00:00")
		first, _ := l.Admit(context.Background(), b, now)
		for range 5 {
			if v, _ := l.Admit(context.Background(), b, now); v.Allowed || v.Limit != core.LimitConcurrent {
				t.Fatalf("second in flight: %+v; want refused by concurrent", v)
			}
		}
		_ = l.Done(context.Background(), b, first.Lease, 0, now)
		v, _ := l.Admit(context.Background(), b, now)
		if !v.Allowed || v.Used.RPM != 2 {
			t.Errorf("after the first ended: %+v; want allowed as the 2nd request of the minute", v)
		}
	})
}
