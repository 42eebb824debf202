package core

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core/usage"
)

// Exchange is what the proxy knows about one request once it has been
// answered: which route served it, who asked, what came back and how long it
// took. The proxy fills it in as the request passes; every observer reads it
// at the end, in one place (Handler.observe): the access log today.
type Exchange struct {
	// Method and Path are the client's; Path has no query (a query can
	// carry a key) and still has the route prefix.
	Method, Path string
	// Route names the upstream that served the request: DefaultRouteName or
	// a route of OXY_ROUTES.
	Route string
	// Caller is the label of the client's proxy key (its name, or key#N);
	// empty when OXY_AUTH_KEYS is off or the request was refused before.
	Caller string
	// Status is the status sent, or StatusClientClosedRequest when the client
	// went away first.
	Status int
	// Start is when the proxy took the request; TTFB is when it sent the
	// response headers, Duration when it finished, both from Start.
	Start          time.Time
	TTFB, Duration time.Duration
	// BytesIn and BytesOut count the request and response bodies (and a
	// WebSocket's traffic after the upgrade).
	BytesIn, BytesOut int64
	// UpstreamRequestID is the upstream's X-Request-Id, if it sent one.
	UpstreamRequestID string
	// UpstreamKey names the real key of the last attempt ("#1", "#2"...,
	// never its value; see KeyPool); empty on a route without real keys.
	UpstreamKey string
	// Retries are the reasons why earlier attempts were retried, in order
	// (rate_limited, unavailable, connect...; see keyverdict.go), for the
	// log and oxy_retries_total{route,reason}; empty without retries.
	Retries []string
	// Aborted reports a response cut short because the upstream failed mid-body.
	Aborted bool
	// Cut names who else cut the answer short: "shutdown" (the proxy's grace
	// period ended) or "send_timeout" (the client stopped reading); empty
	// otherwise. A client that went away is Status 499.
	Cut string
	// Err is the round-trip error, if any.
	Err error
	// Limited names the limit of the caller's budget (OXY_LIMITS) that
	// refused the request: rpm, tpm, concurrent, tpd, or LimitUnavailable
	// when the limits' store could not be asked and OXY_LIMITS_FAIL_CLOSED
	// refused it. Empty for a request that was not refused by its budget.
	Limited LimitKind
	// Unchecked reports a request of a caller with limits that went through
	// without them because the limits' store could not be asked (fail open).
	Unchecked bool
	// Budget is the caller's limits (zero: none), and Left what remained of
	// each at the request's admission (see Verdict.Used).
	Budget, Left Limits
	// UpstreamError is the kind of upstream failure (UpstreamUnreachable,
	// UpstreamTimeout, UpstreamFailed, UpstreamAborted,
	// UpstreamStreamError), or empty.
	UpstreamError string
	// Model is the model the response names, else the one the request
	// named (its JSON body, or a Gemini or Azure path); empty if none.
	Model string
	// Usage is the token usage the upstream reported, as far as the answer
	// could be read (see Usage.Reported); a limiter charges it at the end.
	Usage usage.Usage
	// Attrs are extra access-log attributes added with AddLogAttrs.
	Attrs []slog.Attr

	// ticket is the request's claim on its budget, handed back when it ends.
	ticket ticket
	// started records that the observer was told the request started.
	started bool
}

// record follows one request through the proxy and fills in its Exchange. It
// is the http.ResponseWriter the reverse proxy writes to; Unwrap lets
// http.ResponseController reach the platform's writer for flushing and
// deadlines, and Hijack is wrapped so WebSocket upgrades are still logged.
type record struct {
	http.ResponseWriter
	x        Exchange
	req      *http.Request
	bytesOut atomic.Int64 // also written by a WebSocket's copy goroutines
	bytesIn  atomic.Int64

	// up is the request's upstream and path the escaped path to forward to
	// it (the client's, without the route prefix) when setPath is true; see
	// Router.Route.
	up      *Upstream
	path    string
	setPath bool

	// Idle limits on the client (deadlines.go); sendDeadline is the write
	// deadline armSend last set, zero for none.
	limits       idleLimits
	sendDeadline time.Time

	// The proxy's own response headers and the upstream header policy,
	// for 1xx responses (informational.go).
	own         http.Header
	ownPending  bool
	cleanHeader func(http.Header)

	// Set by the error handler.
	clientGone bool
	// bodyErr is the first error reading the client's request body, set
	// by the transport's goroutine.
	bodyErr atomic.Pointer[bodyReadError]
	// sendTimedOut is set when a write to the client hit OXY_SEND_TIMEOUT.
	sendTimedOut atomic.Bool
	// quiet marks a request answered without an access-log line (the
	// health route); no observer sees it.
	quiet bool
	// ownBudgetHeaders is set when the proxy writes its own budget headers
	// for this request, so the upstream's are dropped.
	ownBudgetHeaders bool
	// The usage meter on the answer's body and the model reader on the
	// request's, when they apply; see meter.go.
	meter    *usage.Body
	reqModel *usage.RequestModel
	settled  bool
}

type recordKey struct{}

func startRecord(w http.ResponseWriter, limits idleLimits) *record {
	return &record{ResponseWriter: w, x: Exchange{Start: time.Now()}, limits: limits}
}

// request returns r carrying the record, with its body counted.
func (rec *record) request(r *http.Request) *http.Request {
	r = r.WithContext(context.WithValue(r.Context(), recordKey{}, rec))
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &countingBody{ReadCloser: r.Body, rec: rec}
	}
	rec.req = r
	return r
}

func recordFrom(r *http.Request) *record {
	rec, _ := r.Context().Value(recordKey{}).(*record)
	return rec
}

// ExchangeFrom returns the Exchange of the request r is part of, for code that
// runs inside the proxy and adds to it; nil for a request outside the proxy's
// handler. It must not be kept past the request.
func ExchangeFrom(r *http.Request) *Exchange {
	if rec := recordFrom(r); rec != nil {
		return &rec.x
	}
	return nil
}

// AddLogAttrs adds attributes to the access-log line of the request r is part
// of, for platform adapters (inside Handler.WithAdapter) and access control.
// It does nothing for a request outside the proxy's handler.
func AddLogAttrs(r *http.Request, attrs ...slog.Attr) {
	if x := ExchangeFrom(r); x != nil {
		x.Attrs = append(x.Attrs, attrs...)
	}
}

func (rec *record) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		rec.writeInformational(code)
		return
	}
	rec.restoreOwnHeaders()
	if rec.x.Status == 0 && code >= 200 {
		rec.x.Status = code
		rec.x.TTFB = time.Since(rec.x.Start)
	}
	rec.armSend()
	rec.ResponseWriter.WriteHeader(code)
	if code >= 200 && isEventStream(rec.Header()) {
		// Send the header now, not with the first event: see isEventStream.
		_ = rec.FlushError()
	}
}

func (rec *record) Write(b []byte) (int, error) {
	if rec.x.Status == 0 {
		rec.restoreOwnHeaders()
		rec.x.Status = http.StatusOK
		rec.x.TTFB = time.Since(rec.x.Start)
	}
	rec.armSend()
	n, err := rec.ResponseWriter.Write(b)
	rec.bytesOut.Add(int64(n))
	rec.noteWriteError(err)
	return n, err
}

// FlushError flushes to the client under the send limit, for
// http.ResponseController (the reverse proxy flushes streams through it).
func (rec *record) FlushError() error {
	rec.armSend()
	err := rec.limits.rc.Flush()
	rec.noteWriteError(err)
	return err
}

// Unwrap returns the platform's writer, for http.ResponseController.
func (rec *record) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// Hijack takes over the connection for a protocol upgrade (WebSocket).
func (rec *record) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(rec.ResponseWriter).Hijack()
	if err != nil {
		return conn, brw, err
	}
	rec.x.Status = http.StatusSwitchingProtocols
	rec.x.TTFB = time.Since(rec.x.Start)
	// The reverse proxy copies the upgraded stream through this conn, so
	// the access log counts WebSocket traffic too.
	return &countingConn{Conn: conn, rec: rec, in: &rec.bytesIn, out: &rec.bytesOut}, brw, nil
}

// countingConn counts the bytes of an upgraded (hijacked) connection, and
// bounds each blocked write to the client by OXY_SEND_TIMEOUT.
type countingConn struct {
	net.Conn
	rec     *record
	in, out *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	if t := c.rec.limits.send; t > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(t))
	}
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	c.rec.noteWriteError(err)
	return n, err
}

// finish completes the Exchange and hands it to observe. It runs deferred,
// so it also sees the http.ErrAbortHandler panic with which the reverse
// proxy aborts a response whose upstream failed mid-body; it re-panics so
// that the server cuts the connection and the client sees an incomplete
// response, never a clean end.
func (rec *record) finish(observe func(*Exchange)) {
	p := recover()
	x := &rec.x
	x.Aborted = p == http.ErrAbortHandler
	switch rec.cutBy(x.Aborted) {
	case cutByClient:
		x.Status = StatusClientClosedRequest
	case cutByShutdown:
		x.Cut = "shutdown"
	case cutBySendTimeout:
		x.Cut = "send_timeout"
	}
	if rec.req != nil {
		x.Method = rec.req.Method
		// The path without its query: queries can carry keys
		// (?key=... for some vendors) and are never logged.
		x.Path = rec.req.URL.Path
	}
	x.Duration = time.Since(x.Start)
	x.BytesIn, x.BytesOut = rec.bytesIn.Load(), rec.bytesOut.Load()
	x.UpstreamRequestID = rec.Header().Get("X-Request-Id")
	rec.settleUsage()
	if x.Aborted && x.Cut == "" && x.Status != StatusClientClosedRequest && x.UpstreamError == "" {
		x.UpstreamError = UpstreamAborted
	}
	if !rec.quiet {
		observe(x)
	}
	if p != nil {
		panic(p)
	}
}

// logExchange writes the access-log line of x. A client that stopped
// reading is its own fault, not the upstream's: no warning for it.
func logExchange(logger *slog.Logger, x *Exchange) {
	level := slog.LevelInfo
	if (x.Aborted || x.Status >= 500) && x.Cut != "send_timeout" {
		level = slog.LevelWarn
	}
	if !logger.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]slog.Attr, 0, 22+len(x.Attrs))
	attrs = append(attrs,
		slog.String("method", x.Method),
		slog.String("path", x.Path),
	)
	// A request a platform adapter answered itself reached no route.
	if x.Route != "" {
		attrs = append(attrs, slog.String("route", x.Route))
	}
	attrs = append(attrs,
		slog.Int("status", x.Status),
		slog.Duration("duration", x.Duration),
		slog.Duration("ttfb", x.TTFB),
		slog.Int64("bytes_in", x.BytesIn),
		slog.Int64("bytes_out", x.BytesOut),
	)
	if x.UpstreamRequestID != "" {
		attrs = append(attrs, slog.String("upstream_request_id", x.UpstreamRequestID))
	}
	if x.Aborted && x.Status != StatusClientClosedRequest {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	if x.Cut != "" {
		attrs = append(attrs, slog.String("cut", x.Cut))
	}
	if x.Err != nil {
		attrs = append(attrs, slog.String("error", safeError(x.Err)))
	}
	if x.Caller != "" {
		attrs = append(attrs, slog.String("caller", x.Caller))
	}
	if x.Limited != "" {
		attrs = append(attrs, slog.String("limit", string(x.Limited)))
	}
	if x.Unchecked {
		attrs = append(attrs, slog.Bool("limits_unchecked", true))
	}
	if x.UpstreamKey != "" {
		attrs = append(attrs, slog.String("upstream_key", x.UpstreamKey))
	}
	if len(x.Retries) > 0 {
		attrs = append(attrs, slog.Int("retries", len(x.Retries)), slog.String("retry_reasons", strings.Join(x.Retries, ",")))
	}
	if x.Model != "" {
		attrs = append(attrs, slog.String("model", x.Model))
	}
	attrs = x.Usage.LogAttrs(attrs)
	if x.Usage.Skipped != "" {
		attrs = append(attrs, slog.String("usage_skipped", x.Usage.Skipped))
	}
	if x.UpstreamError != "" {
		attrs = append(attrs, slog.String("upstream_error", x.UpstreamError))
	}
	attrs = append(attrs, x.Attrs...)
	logger.LogAttrs(context.Background(), level, "request", attrs...)
}

// safeError returns err's text without any URL it wraps (a URL's query can
// carry a key).
func safeError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

// Who cut a request short, for its log line.
const (
	cutByNobody = iota
	cutByClient
	cutByShutdown
	cutBySendTimeout
)

// cutBy tells who ended the request before its answer was complete: the
// client going away (logged as 499), the proxy's shutdown (its own abort,
// never 499: ErrShutdown is the cause the server gives the requests it cuts),
// or a client that stopped reading (OXY_SEND_TIMEOUT).
func (rec *record) cutBy(aborted bool) int {
	if rec.sendTimedOut.Load() {
		return cutBySendTimeout
	}
	if rec.req == nil {
		return cutByNobody
	}
	ctx := rec.req.Context()
	cause := context.Cause(ctx)
	switch {
	case cause != nil && errors.Is(cause, ErrShutdown):
		return cutByShutdown
	case rec.clientGone:
		return cutByClient
	case ctx.Err() != nil && errors.Is(cause, context.Canceled) && (rec.x.Status == 0 || aborted):
		return cutByClient
	}
	return cutByNobody
}

// countingBody counts the request body bytes read by the proxy, bounds each
// wait for more of them by OXY_CLIENT_BODY_TIMEOUT, and keeps the first read
// error so that a client's fault is not reported as the upstream's.
type countingBody struct {
	io.ReadCloser
	rec *record
}

func (b *countingBody) Read(p []byte) (int, error) {
	armed := b.rec.limits.armRead()
	n, err := b.ReadCloser.Read(p)
	b.rec.bytesIn.Add(int64(n))
	if err != nil {
		// Only a body that ended lets the deadline go. After a stall it
		// stays in the past, so that net/http, which reads on to discard
		// the rest of the body once the handler returns, gives up at once
		// and closes the connection instead of waiting on the client.
		if armed && err == io.EOF {
			b.rec.limits.disarmRead()
		}
		if err != io.EOF && !errors.Is(err, http.ErrBodyReadAfterClose) {
			b.rec.bodyErr.CompareAndSwap(nil, &bodyReadError{err})
		}
	}
	return n, err
}
