package core

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// Budget is what a Limiter is asked about: one caller (a proxy key's label)
// and its limits.
type Budget struct {
	// Caller is the proxy key's label: its name, or key#N.
	Caller string
	Limits
}

// Verdict is a Limiter's answer to one request.
type Verdict struct {
	// Allowed reports that every limit let the request through; it has then
	// been counted (one request this minute, one slot in flight).
	Allowed bool
	// Limit is the limit that refused the request, when not Allowed.
	Limit LimitKind
	// RetryAfter is how long until the refusing limit lets a request in again.
	RetryAfter time.Duration
	// Used is each counter at the time of the verdict: requests this minute
	// and requests in flight (this one included when Allowed), tokens this
	// minute and tokens today.
	Used Limits
	// Lease names the in-flight slot taken for the concurrency limit, to be
	// handed back to Done; empty when none was taken.
	Lease string
}

// Limiter keeps the counters of the budgets. Implementations must be safe
// for concurrent use and update their counters atomically: several requests,
// and with a shared store several proxy instances, ask at once. The core
// keeps one in memory (NewMemoryLimiter); a shared store is an adapter
// outside the core.
type Limiter interface {
	// Admit checks b at now: the daily and per-minute token budgets must not
	// be spent already, and one more request must fit the requests-per-minute
	// and concurrency limits. Only if all of them allow it is the request
	// counted. An error means the store could not be asked.
	Admit(ctx context.Context, b Budget, now time.Time) (Verdict, error)
	// Done ends a request that Admit allowed: it frees the in-flight slot
	// named by lease (if any) and charges tokens, the request's metered
	// input and output tokens, to the minute and the UTC day of now.
	Done(ctx context.Context, b Budget, lease string, tokens int64, now time.Time) error
}

// ConcurrencyRetryAfter is the Retry-After of a request refused by the
// concurrency limit: no clock says when a slot frees, so clients are asked to
// come back shortly.
const ConcurrencyRetryAfter = time.Second

// Window returns the counting window of limit kind k that holds now: a
// number that names it (the same on every instance whose clock is right)
// and the time it ends. Minutes and days are those of UTC; Unix time has no
// leap seconds, so a day is always 86,400 of them.
func Window(k LimitKind, now time.Time) (id int64, ends time.Time) {
	size := int64(60)
	if k == LimitTPD {
		size = 86400
	}
	id = now.Unix() / size
	return id, time.Unix((id+1)*size, 0)
}

// Refusal returns the verdict refusing a request by limit k at now, with
// the counters used.
func Refusal(k LimitKind, used Limits, now time.Time) Verdict {
	v := Verdict{Limit: k, Used: used, RetryAfter: ConcurrencyRetryAfter}
	if k != LimitConcurrent {
		_, ends := Window(k, now)
		v.RetryAfter = ends.Sub(now)
	}
	return v
}

// MemoryLimiter is a Limiter whose counters live in this process: right for
// one instance, and multiplied by the number of instances otherwise.
type MemoryLimiter struct {
	mu      sync.Mutex
	callers map[string]*memCounters
}

var _ Limiter = (*MemoryLimiter)(nil)

// memCounters are one caller's counters and the windows they belong to.
type memCounters struct {
	minute, day    int64
	requests       int64 // this minute
	minuteTokens   int64
	dayTokens      int64
	inFlight       int64
	nextLease      uint64
	leasesInFlight map[uint64]bool
}

// NewMemoryLimiter returns an empty in-memory Limiter.
func NewMemoryLimiter() *MemoryLimiter {
	return &MemoryLimiter{callers: map[string]*memCounters{}}
}

// counters returns the caller's counters, rolled over to the windows of now.
// The caller holds l.mu.
func (l *MemoryLimiter) counters(caller string, now time.Time) *memCounters {
	c := l.callers[caller]
	if c == nil {
		c = &memCounters{leasesInFlight: map[uint64]bool{}}
		l.callers[caller] = c
	}
	if m, _ := Window(LimitRPM, now); m != c.minute {
		c.minute, c.requests, c.minuteTokens = m, 0, 0
	}
	if d, _ := Window(LimitTPD, now); d != c.day {
		c.day, c.dayTokens = d, 0
	}
	return c
}

// Admit implements Limiter.
func (l *MemoryLimiter) Admit(_ context.Context, b Budget, now time.Time) (Verdict, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.counters(b.Caller, now)
	used := Limits{RPM: c.requests, TPM: c.minuteTokens, Concurrent: c.inFlight, TPD: c.dayTokens}
	for _, k := range limitKinds {
		if max := b.Of(k); max > 0 && used.Of(k) >= max {
			return Refusal(k, used, now), nil
		}
	}
	v := Verdict{Allowed: true}
	if b.RPM > 0 {
		c.requests++
	}
	if b.Concurrent > 0 {
		c.inFlight++
		c.nextLease++
		c.leasesInFlight[c.nextLease] = true
		v.Lease = strconv.FormatUint(c.nextLease, 10)
	}
	v.Used = Limits{RPM: c.requests, TPM: c.minuteTokens, Concurrent: c.inFlight, TPD: c.dayTokens}
	return v, nil
}

// Done implements Limiter.
func (l *MemoryLimiter) Done(_ context.Context, b Budget, lease string, tokens int64, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.counters(b.Caller, now)
	if n, err := strconv.ParseUint(lease, 10, 64); err == nil && c.leasesInFlight[n] {
		delete(c.leasesInFlight, n)
		c.inFlight--
	}
	if tokens > 0 {
		c.minuteTokens = min(c.minuteTokens+tokens, maxLimit)
		c.dayTokens = min(c.dayTokens+tokens, maxLimit)
	}
	return nil
}
