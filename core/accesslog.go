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
	"sync/atomic"
	"time"
)

// record follows one request through the proxy for its access-log line. It is
// the http.ResponseWriter the reverse proxy writes to; Unwrap lets
// http.ResponseController reach the platform's writer for flushing and
// deadlines, and Hijack is wrapped so WebSocket upgrades are still logged.
type record struct {
	http.ResponseWriter
	req       *http.Request
	start     time.Time
	firstByte time.Duration
	status    int
	bytesOut  atomic.Int64 // also written by a WebSocket's copy goroutines
	bytesIn   atomic.Int64

	// Idle limits on the client (deadlines.go).
	limits idleLimits

	// The proxy's own response headers and the upstream header policy,
	// for 1xx responses (informational.go).
	own         http.Header
	ownPending  bool
	cleanHeader func(http.Header)

	// Set by the error handler and by AddLogAttrs.
	err        error
	clientGone bool
	attrs      []slog.Attr
	// bodyErr is the first error reading the client's request body, set
	// by the transport's goroutine.
	bodyErr atomic.Pointer[bodyReadError]
	// sendTimedOut is set when a write to the client hit OXY_SEND_TIMEOUT.
	sendTimedOut atomic.Bool
	// quiet marks a request answered without an access-log line (the
	// health route).
	quiet bool
}

type recordKey struct{}

func startRecord(w http.ResponseWriter, limits idleLimits) *record {
	return &record{ResponseWriter: w, start: time.Now(), limits: limits}
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

// AddLogAttrs adds attributes to the access-log line of the request r is part
// of, for platform adapters (inside Handler.WithAdapter) and access control.
// It does nothing for a request outside the proxy's handler.
func AddLogAttrs(r *http.Request, attrs ...slog.Attr) {
	if rec := recordFrom(r); rec != nil {
		rec.attrs = append(rec.attrs, attrs...)
	}
}

func (rec *record) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		rec.writeInformational(code)
		return
	}
	rec.restoreOwnHeaders()
	if rec.status == 0 && code >= 200 {
		rec.status = code
		rec.firstByte = time.Since(rec.start)
	}
	rec.limits.armWrite()
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *record) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.restoreOwnHeaders()
		rec.status = http.StatusOK
		rec.firstByte = time.Since(rec.start)
	}
	rec.limits.armWrite()
	n, err := rec.ResponseWriter.Write(b)
	rec.bytesOut.Add(int64(n))
	rec.noteWriteError(err)
	return n, err
}

// FlushError flushes to the client under the send limit, for
// http.ResponseController (the reverse proxy flushes streams through it).
func (rec *record) FlushError() error {
	rec.limits.armWrite()
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
	rec.status = http.StatusSwitchingProtocols
	rec.firstByte = time.Since(rec.start)
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

// finish writes the access-log line. It runs deferred, so it also sees the
// http.ErrAbortHandler panic with which the reverse proxy aborts a response
// whose upstream failed mid-body; it logs and re-panics so that the server
// cuts the connection and the client sees an incomplete response, never a
// clean end.
func (rec *record) finish(logger *slog.Logger) {
	p := recover()
	aborted := p == http.ErrAbortHandler
	status := rec.status
	cut := rec.cutBy(aborted)
	if cut == cutByClient {
		status = StatusClientClosedRequest
	}
	level := slog.LevelInfo
	if (aborted || status >= 500) && cut != cutBySendTimeout {
		level = slog.LevelWarn
	}
	if !rec.quiet && logger.Enabled(context.Background(), level) {
		attrs := make([]slog.Attr, 0, 12+len(rec.attrs))
		attrs = append(attrs,
			slog.String("method", rec.method()),
			slog.String("path", rec.path()),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(rec.start)),
			slog.Duration("ttfb", rec.firstByte),
			slog.Int64("bytes_in", rec.bytesIn.Load()),
			slog.Int64("bytes_out", rec.bytesOut.Load()),
		)
		if id := rec.Header().Get("X-Request-Id"); id != "" {
			attrs = append(attrs, slog.String("upstream_request_id", id))
		}
		if aborted && status != StatusClientClosedRequest {
			attrs = append(attrs, slog.Bool("aborted", true))
		}
		switch cut {
		case cutByShutdown:
			attrs = append(attrs, slog.String("cut", "shutdown"))
		case cutBySendTimeout:
			attrs = append(attrs, slog.String("cut", "send_timeout"))
		}
		if rec.err != nil {
			attrs = append(attrs, slog.String("error", safeError(rec.err)))
		}
		attrs = append(attrs, rec.attrs...)
		logger.LogAttrs(context.Background(), level, "request", attrs...)
	}
	if p != nil {
		panic(p)
	}
}

func (rec *record) method() string {
	if rec.req == nil {
		return ""
	}
	return rec.req.Method
}

// path is the request path without its query: queries can carry keys
// (?key=... for some vendors) and are never logged.
func (rec *record) path() string {
	if rec.req == nil {
		return ""
	}
	return rec.req.URL.Path
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
	case ctx.Err() != nil && errors.Is(cause, context.Canceled) && (rec.status == 0 || aborted):
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
		if armed {
			b.rec.limits.disarmRead()
		}
		if err != io.EOF && !errors.Is(err, http.ErrBodyReadAfterClose) {
			b.rec.bodyErr.CompareAndSwap(nil, &bodyReadError{err})
		}
	}
	return n, err
}
