package core

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// budgets enforces OXY_LIMITS on the request path: after the proxy key is
// known and before the upstream is called, Admit counts the request or
// refuses it with 429; when the request ends, Done frees its in-flight slot
// and charges its metered tokens.
type budgets struct {
	limits     map[string]Limits
	limiter    Limiter
	failClosed bool
	logger     *slog.Logger
	now        func() time.Time

	// While the store fails, it is not asked again for storeBackoff: a
	// store that is down (or blackholed, so each call would wait for its
	// timeout) costs the requests nothing. down makes the log say so once.
	downUntil atomic.Int64 // UnixNano
	down      atomic.Bool
}

// storeBackoff is how long a failing store is left alone before it is asked
// again; the first request after it reconnects.
const storeBackoff = time.Second

func newBudgets(c Config, limiter Limiter, logger *slog.Logger) *budgets {
	if len(c.Limits) == 0 {
		return nil
	}
	if limiter == nil {
		if c.RedisURL != "" {
			logger.Error("OXY_REDIS_URL is set but this build has no Redis limiter; counting budgets in this process only")
		}
		limiter = NewMemoryLimiter()
	}
	return &budgets{limits: c.Limits, limiter: limiter, failClosed: c.LimitsFailClosed, logger: logger, now: time.Now}
}

// ticket is an admitted request's claim on its budget, handed back when the
// request ends.
type ticket struct {
	budget Budget
	lease  string
	// counted is false when the store could not be asked and the request
	// went through unlimited (fail open): there is nothing to hand back.
	counted bool
}

// errStoreResting stands for the store's last error while it is left alone.
var errStoreResting = fmt.Errorf("not asked again for %v after a failure", storeBackoff)

// LimitUnavailable is Exchange.Limited for a request refused because the
// limits' store could not be asked (OXY_LIMITS_FAIL_CLOSED).
const LimitUnavailable LimitKind = "unavailable"

// admit checks the budget of x's caller for r and notes the verdict in x. It
// reports false when it answered w itself (429, or 503 with
// OXY_LIMITS_FAIL_CLOSED). A caller without limits passes untouched.
func (b *budgets) admit(w http.ResponseWriter, r *http.Request, x *Exchange) bool {
	l, ok := b.limits[x.Caller]
	if !ok {
		return true
	}
	x.Budget = l
	t := ticket{budget: Budget{Caller: x.Caller, Limits: l}}
	now := b.now()
	var v Verdict
	var err error
	if now.UnixNano() < b.downUntil.Load() {
		err = errStoreResting
	} else {
		v, err = b.limiter.Admit(r.Context(), t.budget, now)
	}
	if err != nil {
		b.failed(err)
		if b.failClosed {
			x.Limited = LimitUnavailable
			AddLogAttrs(r, rejectedAttr(errLimitsUnavailable))
			w.Header().Set("Retry-After", "1")
			WriteError(w, errLimitsUnavailable)
			return false
		}
		x.Unchecked = true
		return true
	}
	b.recovered()
	x.Left = remaining(l, v.Used)
	writeBudgetHeaders(w.Header(), l, x.Left)
	if !v.Allowed {
		x.Limited = v.Limit
		e := limitError(l, v)
		AddLogAttrs(r, rejectedAttr(e))
		setRetryAfter(w.Header(), v.RetryAfter)
		if v.Limit == LimitTPD {
			// Stainless-generated SDKs (OpenAI's Python, Node and Go
			// libraries) retry every 429 unless told not to; a daily quota
			// will not come back within their retries.
			w.Header().Set("X-Should-Retry", "false")
		}
		WriteError(w, e)
		return false
	}
	t.lease, t.counted = v.Lease, true
	x.ticket = t
	return true
}

// done ends the admitted request of x: it frees its in-flight slot and
// charges its metered tokens. It runs where the observers read the
// Exchange, once the usage is known, and before the server sends the last
// bytes of a chunked answer, so a sequential client's next request sees the
// charge.
func (b *budgets) done(x *Exchange) {
	t := x.ticket
	tokens := x.meteredTokens()
	if !t.counted || (t.lease == "" && (tokens <= 0 || t.budget.TPM == 0 && t.budget.TPD == 0)) {
		return
	}
	now := b.now()
	if now.UnixNano() < b.downUntil.Load() {
		return
	}
	// The client may be gone; the charge is still owed.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.limiter.Done(ctx, t.budget, t.lease, tokens, now); err != nil {
		b.failed(err)
	}
}

// meteredTokens is what a request costs its token budgets: the input and
// output tokens metered from its answer.
func (x *Exchange) meteredTokens() int64 { return x.Usage.Input + x.Usage.Output }

// remaining returns what is left of each of l's limits after used.
func remaining(l, used Limits) Limits {
	var left Limits
	for _, k := range limitKinds {
		if limit := l.Of(k); limit > 0 {
			left.set(k, min(limit, max(0, limit-used.Of(k))))
		}
	}
	return left
}

// failed notes a store failure: the first one after a healthy spell is
// logged, the store is left alone for storeBackoff.
func (b *budgets) failed(err error) {
	if err == errStoreResting {
		return
	}
	b.downUntil.Store(b.now().Add(storeBackoff).UnixNano())
	if !b.down.CompareAndSwap(false, true) {
		return
	}
	if b.failClosed {
		b.logger.Error("limits store unreachable: refusing requests of keys with limits with 503 until it is back (OXY_LIMITS_FAIL_CLOSED)", "error", err.Error())
	} else {
		b.logger.Error("limits store unreachable: serving requests without limits until it is back (fail open)", "error", err.Error())
	}
}

func (b *budgets) recovered() {
	if b.down.CompareAndSwap(true, false) {
		b.logger.Info("limits store reachable again: budgets enforced")
	}
}

// errLimitsUnavailable answers requests while the store cannot be asked and
// OXY_LIMITS_FAIL_CLOSED is set.
var errLimitsUnavailable = &APIError{Status: http.StatusServiceUnavailable, Type: "proxy_error", Code: "limits_unavailable",
	Message: "the proxy cannot check this key's budget right now (its counter store is unreachable); try again shortly"}

// limitError is the 429 for a refused request. Over a rate or concurrency
// limit it says rate_limit_exceeded, which is the code OpenAI gives its own
// rate limits; over the daily quota it says insufficient_quota, which
// OpenAI's clients treat as "do not retry soon".
func limitError(l Limits, v Verdict) *APIError {
	wait := waitText(v.RetryAfter)
	e := &APIError{Status: http.StatusTooManyRequests, Type: "rate_limit_exceeded", Code: "rate_limit_exceeded"}
	switch v.Limit {
	case LimitRPM:
		e.Message = fmt.Sprintf("rate limit of this proxy key reached: %d requests per minute (rpm); try again in %s", l.RPM, wait)
	case LimitTPM:
		e.Message = fmt.Sprintf("rate limit of this proxy key reached: %d tokens per minute (tpm), %d used; try again in %s", l.TPM, v.Used.TPM, wait)
	case LimitConcurrent:
		e.Message = fmt.Sprintf("this proxy key already has %d requests in flight, its limit (concurrent); try again when one ends", l.Concurrent)
	case LimitTPD:
		e.Type, e.Code = "insufficient_quota", "insufficient_quota"
		e.Message = fmt.Sprintf("daily token quota of this proxy key used up: %d tokens per UTC day (tpd), %d used; it renews at 00:00 UTC, in %s; ask the operator for more", l.TPD, v.Used.TPD, wait)
	}
	return e
}

func waitText(d time.Duration) string {
	switch {
	case d <= time.Second:
		return "1s"
	case d < time.Minute:
		return strconv.Itoa(int(math.Ceil(d.Seconds()))) + "s"
	default:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
}

// setRetryAfter writes Retry-After in whole seconds, rounded up (RFC 9110
// section 10.2.3), and retry-after-ms, which OpenAI sends too and its SDKs
// read first.
func setRetryAfter(h http.Header, d time.Duration) {
	secs := int64(math.Ceil(d.Seconds()))
	if secs < 1 {
		secs = 1
	}
	h.Set("Retry-After", strconv.FormatInt(secs, 10))
	h.Set("Retry-After-Ms", strconv.FormatInt(max(d.Milliseconds(), 1), 10))
}

// The proxy's own budget headers. The vendors' x-ratelimit-* headers (the
// key's limits at the vendor) pass through unchanged, so the proxy's carry
// an x-oxy- prefix: a client or dashboard reading either never gets the
// other's numbers, and never two values for one header.
var budgetHeaders = map[LimitKind][2]string{
	LimitRPM:        {"X-Oxy-Ratelimit-Limit-Requests", "X-Oxy-Ratelimit-Remaining-Requests"},
	LimitTPM:        {"X-Oxy-Ratelimit-Limit-Tokens", "X-Oxy-Ratelimit-Remaining-Tokens"},
	LimitConcurrent: {"X-Oxy-Ratelimit-Limit-Concurrent", "X-Oxy-Ratelimit-Remaining-Concurrent"},
	LimitTPD:        {"X-Oxy-Ratelimit-Limit-Tokens-Day", "X-Oxy-Ratelimit-Remaining-Tokens-Day"},
}

// budgetHeaderPrefix starts every header in budgetHeaders.
const budgetHeaderPrefix = "X-Oxy-Ratelimit-"

// writeBudgetHeaders sets the limit and what is left of each of l's limits.
func writeBudgetHeaders(h http.Header, l, left Limits) {
	for _, k := range limitKinds {
		limit := l.Of(k)
		if limit == 0 {
			continue
		}
		names := budgetHeaders[k]
		h[names[0]] = []string{strconv.FormatInt(limit, 10)}
		h[names[1]] = []string{strconv.FormatInt(left.Of(k), 10)}
	}
}

// dropUpstreamBudgetHeaders removes budget headers an upstream sent (another
// instance of this proxy in front of the vendor), so that the client gets
// one value of each: this proxy's.
func dropUpstreamBudgetHeaders(h http.Header) {
	for name := range h {
		if len(name) > len(budgetHeaderPrefix) && strings.EqualFold(name[:len(budgetHeaderPrefix)], budgetHeaderPrefix) {
			delete(h, name)
		}
	}
}
