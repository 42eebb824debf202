package core

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Retry: the key transport sends each request with a key from the route's
// pool and, when the answer says another attempt may succeed, tries again
// with another key. It is an http.RoundTripper under httputil.ReverseProxy,
// so every retry happens before the proxy has written anything to the client:
// once RoundTrip has returned a response, its headers and body go to the
// client and nothing is ever retried, so a stream is never restarted (peers
// that retried mid-stream sent users duplicated text).

// RetryOptions are the key transport's settings.
type RetryOptions struct {
	// Retries is how many times a request is retried (OXY_RETRIES).
	Retries int
	// MaxBody is the largest request body kept in memory to be replayed
	// (OXY_RETRY_MAX_BODY); a larger body is streamed and never retried.
	MaxBody int64
	// Backoff is the pause before the first retry, doubled (with jitter) for
	// each further one; zero means DefaultRetryBackoff.
	Backoff time.Duration
}

// Defaults of the retry settings.
const (
	DefaultRetries       = 2
	DefaultRetryMaxBody  = 1 << 20
	DefaultRetryBackoff  = 100 * time.Millisecond
	maxRetryBackoff      = 2 * time.Second
	minTimeLeftAfterWait = 50 * time.Millisecond
)

// KeyTransport is an http.RoundTripper that sends each request with a key
// from a KeyPool, retrying refused and failed attempts before anything
// reaches the client. When every key is resting it answers 429 itself,
// without calling the upstream.
type KeyTransport struct {
	base  http.RoundTripper
	pool  *KeyPool
	apply func(*http.Request, Secret)
	opts  RetryOptions
}

// NewKeyTransport returns a transport that sends requests through base with
// pool's keys; apply puts a key on an outbound request (the route's
// credential scheme), and is called again for every attempt.
func NewKeyTransport(base http.RoundTripper, pool *KeyPool, apply func(*http.Request, Secret), o RetryOptions) *KeyTransport {
	if o.Backoff <= 0 {
		o.Backoff = DefaultRetryBackoff
	}
	o.Retries = max(o.Retries, 0)
	o.MaxBody = max(o.MaxBody, 0)
	return &KeyTransport{base: base, pool: pool, apply: apply, opts: o}
}

// Pool returns the transport's key pool.
func (t *KeyTransport) Pool() *KeyPool { return t.pool }

// RoundTrip implements http.RoundTripper.
func (t *KeyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	k, soonest, ok := t.pool.pick(ctx, nil, false)
	if !ok {
		// Handler.serve refuses such requests before they get here; this
		// is for keys that started resting since, and for other callers.
		AddLogAttrs(req, slog.String("rejected", errKeysResting.Code))
		return restingResponse(req, soonest), nil
	}
	a := attempts{t: t, req: req, key: k}
	if req.Body != nil && req.Body != http.NoBody {
		if req.ContentLength > t.opts.MaxBody || t.opts.MaxBody == 0 {
			a.noReplay = true
		} else {
			a.first = newReplayBody(req.Body, req.ContentLength, t.opts.MaxBody)
		}
	}
	return a.run(ctx)
}

// attempts is one request's sequence of attempts.
type attempts struct {
	t        *KeyTransport
	req      *http.Request
	key      int // the key of the next attempt
	first    *replayBody
	getBody  func() (io.ReadCloser, error) // the whole body, once a retry needs it
	noReplay bool                          // the body cannot be sent twice
}

func (a *attempts) run(ctx context.Context) (*http.Response, error) {
	t := a.t
	var triedBuf [4]int
	tried := triedBuf[:0] // keys already used
	for attempt := 0; ; attempt++ {
		// The first attempt sends the reverse proxy's own outbound request,
		// which nothing else uses (the key set on it is what the rewrite
		// used to set); a retry sends a copy, since the transport may still
		// hold the request of the attempt before.
		out := a.req
		if attempt > 0 {
			out = a.req.Clone(ctx)
		}
		switch {
		case a.getBody != nil:
			out.Body, _ = a.getBody()
			out.GetBody = a.getBody
		case a.first != nil:
			out.Body = a.first
		}
		k := a.key
		t.apply(out, t.pool.keys[k])
		res, err := t.base.RoundTrip(out)
		v := t.judge(res, err)
		if v.rest > 0 && res != nil {
			t.pool.rest(ctx, k, v.rest, v.reason, res.StatusCode)
		}
		tried = append(tried, k)
		next, wait, retry := t.retryPlan(ctx, v, attempt, tried)
		if retry && !a.replayable(ctx, res == nil) {
			retry = false
			AddLogAttrs(a.req, slog.String("not_retried", "body_not_replayable"))
		}
		if !retry {
			t.logOutcome(a.req, k, v)
			return res, err
		}
		if res != nil {
			// Drain a little so that the connection can be reused.
			_, _ = io.CopyN(io.Discard, res.Body, 4<<10)
			res.Body.Close()
		}
		t.pool.logger.LogAttrs(ctx, slog.LevelInfo, "retrying upstream request",
			slog.String("route", t.pool.route), slog.String("key", t.pool.labels[k]), slog.String("reason", v.reason),
			slog.Int("attempt", attempt+1), slog.String("next_key", t.pool.labels[next]), slog.Duration("backoff", wait))
		if x := ExchangeFrom(a.req); x != nil {
			x.Retries = append(x.Retries, v.reason)
		}
		if t.pool.observer != nil {
			t.pool.observer.Retried(t.pool.route, v.reason)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
		a.key = next
	}
}

// replayable reports whether the body can be sent again, getting the whole
// of it from the first attempt's copy when first asked. failedBeforeAnswer
// says that no answer came, so the rest of the body may be read from the
// client: nobody waits on it.
func (a *attempts) replayable(ctx context.Context, failedBeforeAnswer bool) bool {
	switch {
	case a.noReplay:
		return false
	case a.getBody != nil || a.first == nil:
		return true
	}
	a.getBody, _ = a.first.replay(ctx, failedBeforeAnswer)
	a.noReplay = a.getBody == nil
	return !a.noReplay
}

// judge classifies one attempt's outcome.
func (t *KeyTransport) judge(res *http.Response, err error) verdict {
	if err != nil {
		if isDialError(err) {
			return verdict{retry: true, reuse: true, reason: reasonConnect}
		}
		return verdict{}
	}
	var body []byte
	if needsBody(res.StatusCode) {
		body = sniffBody(res)
	}
	return judge(res, body, t.pool.cooldown, time.Now())
}

// retryPlan decides whether to try again, with which key and after what pause:
// only for an outcome worth retrying, within OXY_RETRIES, with a key that may
// be used, and with time left before the client's deadline. (Whether the body
// can be sent again is asked last: it may read the rest of the body.)
func (t *KeyTransport) retryPlan(ctx context.Context, v verdict, attempt int, tried []int) (next int, wait time.Duration, ok bool) {
	if !v.retry || attempt >= t.opts.Retries || ctx.Err() != nil {
		return 0, 0, false
	}
	next, _, ok = t.pool.pick(ctx, tried, v.reuse)
	if !ok {
		return 0, 0, false
	}
	wait = backoff(t.opts.Backoff, attempt)
	if deadline, has := ctx.Deadline(); has && time.Until(deadline) < wait+minTimeLeftAfterWait {
		return 0, 0, false
	}
	return next, wait, true
}

// logOutcome records the key of the last attempt in the request's Exchange.
func (t *KeyTransport) logOutcome(req *http.Request, k int, v verdict) {
	if x := ExchangeFrom(req); x != nil {
		x.UpstreamKey = t.pool.labels[k]
	}
	if v.reason == reasonRegion {
		AddLogAttrs(req, slog.String("upstream_refused", reasonRegion))
	}
}

// backoff is the pause before retry number attempt+1: base doubled per
// attempt, with up to 50% jitter so that retries from many requests spread.
func backoff(base time.Duration, attempt int) time.Duration {
	d := min(base<<min(attempt, 10), maxRetryBackoff)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// errKeysResting answers a request when every key of its route is resting.
var errKeysResting = &APIError{Status: http.StatusTooManyRequests, Type: "rate_limit_exceeded", Code: "upstream_keys_resting",
	Message: "every upstream API key of this proxy is resting after rate limits or errors; retry after the time in Retry-After"}

// refuseAllResting answers r with the proxy's own 429 when every key of p
// rests, and reports whether it did.
func refuseAllResting(w http.ResponseWriter, r *http.Request, p *KeyPool) bool {
	soonest, all := p.allResting(r.Context())
	if !all {
		return false
	}
	AddLogAttrs(r, slog.String("rejected", errKeysResting.Code))
	w.Header().Set("Retry-After", retryAfterSeconds(soonest))
	WriteError(w, errKeysResting)
	return true
}

// retryAfterSeconds is Retry-After for t: whole seconds, rounded up, at least 1.
func retryAfterSeconds(t time.Time) string {
	return strconv.FormatInt(max(int64(math.Ceil(time.Until(t).Seconds())), 1), 10)
}

// restingResponse is the proxy's own 429 when every key rests, with
// Retry-After set to when the first comes back.
func restingResponse(req *http.Request, soonest time.Time) *http.Response {
	body := errorBody(errKeysResting)
	h := http.Header{}
	setErrorHeaders(h, len(body))
	h.Set("Retry-After", retryAfterSeconds(soonest))
	return &http.Response{
		Status: "429 Too Many Requests", StatusCode: http.StatusTooManyRequests,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}
}
