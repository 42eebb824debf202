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

	// Set by the error handler and by AddLogAttrs.
	err        error
	clientGone bool
	attrs      []slog.Attr
}

type recordKey struct{}

func startRecord(w http.ResponseWriter) *record {
	return &record{ResponseWriter: w, start: time.Now()}
}

// request returns r carrying the record, with its body counted.
func (rec *record) request(r *http.Request) *http.Request {
	r = r.WithContext(context.WithValue(r.Context(), recordKey{}, rec))
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &countingBody{ReadCloser: r.Body, n: &rec.bytesIn}
	}
	rec.req = r
	return r
}

func recordFrom(r *http.Request) *record {
	rec, _ := r.Context().Value(recordKey{}).(*record)
	return rec
}

// AddLogAttrs adds attributes to the access-log line of the request r is part
// of, for wrappers such as platform adapters and access control. It does
// nothing for a request that is not being proxied.
func AddLogAttrs(r *http.Request, attrs ...slog.Attr) {
	if rec := recordFrom(r); rec != nil {
		rec.attrs = append(rec.attrs, attrs...)
	}
}

func (rec *record) WriteHeader(code int) {
	if rec.status == 0 && code >= 200 {
		rec.status = code
		rec.firstByte = time.Since(rec.start)
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *record) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
		rec.firstByte = time.Since(rec.start)
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytesOut.Add(int64(n))
	return n, err
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
	return &countingConn{Conn: conn, in: &rec.bytesIn, out: &rec.bytesOut}, brw, nil
}

// countingConn counts the bytes of an upgraded (hijacked) connection.
type countingConn struct {
	net.Conn
	in, out *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
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
	if rec.clientGone || (rec.req != nil && (aborted || status == 0) && rec.req.Context().Err() != nil &&
		errors.Is(context.Cause(rec.req.Context()), context.Canceled)) {
		status = StatusClientClosedRequest
	}
	level := slog.LevelInfo
	if aborted || status >= 500 {
		level = slog.LevelWarn
	}
	if logger.Enabled(context.Background(), level) {
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

// countingBody counts the request body bytes read by the proxy.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
