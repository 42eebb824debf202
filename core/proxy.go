// Package core is the platform-independent proxy: settings, the reverse-proxy
// handler, the header policy, proxy-made errors and the access log. It uses the
// standard library only; each platform under platforms/ wraps it.
package core

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core/usage"
)

// NewTransport returns the upstream transport for c: the standard library's
// default transport (HTTPS_PROXY/NO_PROXY, HTTP/2 where offered) with bounded
// connects and TLS handshakes, a connection pool sized for many concurrent
// clients, and no response-header timeout: a non-streaming completion sends its
// headers only when generation ends, which can take minutes.
func NewTransport(c Config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: c.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = c.DialTimeout
	t.ResponseHeaderTimeout = 0
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	// Pass bodies through as the upstream sent them: with compression on, the
	// transport would ask for gzip itself and hand back a decoded body whose
	// length and headers differ from the upstream's.
	t.DisableCompression = true
	t.ReadBufferSize = transportBufferSize
	t.WriteBufferSize = transportBufferSize
	return t
}

// transportBufferSize is the size of the read and the write buffer of each
// upstream connection (the standard library's default is 4 KiB each). They
// stay allocated for as long as the connection is open, so for every stream
// held, while they only ever hold a request's or a response's headers and the
// event in flight: body copies larger than the buffer bypass it (the copy
// buffer is 32 KiB). 1 KiB each keeps about 6 KiB less per open stream
// (docs/BENCHMARKS.md); header lines longer than the buffer still parse.
const transportBufferSize = 1 << 10

// Handler is the proxy: an http.Handler that forwards every request to the
// upstream its path selects (see Router) and logs one access-log line per request.
type Handler struct {
	cfg     Config
	router  *Router
	policy  HeaderPolicy
	logger  *slog.Logger
	access  *accessControl
	budgets *budgets
	pools   []*KeyPool // of the routes with real keys, in route order
	meter   *usage.Meter
	// observer, if set, sees every request (WithObserver).
	observer Observer
}

// Option changes what New builds.
type Option func(*options)

type options struct {
	limiter      Limiter
	keyRests     KeyRests
	keyObserver  KeyObserver
	retryBackoff time.Duration // tests shorten it
	observer     Observer
	decoders     map[string]usage.Decoder
}

// WithLimiter keeps the budgets' counters (OXY_LIMITS) in l, such as a store
// shared by every instance; without it they are kept in memory.
func WithLimiter(l Limiter) Option { return func(o *options) { o.limiter = l } }

// WithKeyRests keeps the rests of the routes' real keys (see KeyPool) in r,
// such as a store shared by every instance; without it they are kept in
// memory.
func WithKeyRests(r KeyRests) Option { return func(o *options) { o.keyRests = r } }

// WithKeyObserver tells ko of the key pools' rests and retries as they happen;
// a KeyStatesObserver is also handed Handler.KeyStates.
func WithKeyObserver(ko KeyObserver) Option { return func(o *options) { o.keyObserver = ko } }

// New returns the proxy handler for c. transport may be nil, in which case
// NewTransport(c) is used; tests and embedders pass their own. Every route's
// reverse proxy shares it (one connection pool); a route with real keys sends
// through it with a KeyTransport, which takes the keys in turn and retries.
func New(c Config, logger *slog.Logger, transport http.RoundTripper, opts ...Option) *Handler {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.keyRests == nil {
		o.keyRests = NewMemoryKeyRests()
	}
	if transport == nil {
		transport = NewTransport(c)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: c, policy: NewHeaderPolicy(c), logger: logger,
		meter: usage.New(usage.Options{Decoders: o.decoders}), observer: o.observer}
	h.access = newAccessControl(c)
	modify := func(res *http.Response) error {
		h.cleanUpstreamHeader(res.Header)
		if rec := recordFrom(res.Request); rec != nil && rec.ownBudgetHeaders {
			dropUpstreamBudgetHeaders(res.Header)
		}
		h.meterResponse(res)
		return nil
	}
	errorLog := slog.NewLogLogger(logger.Handler(), slog.LevelDebug)
	retry := RetryOptions{Retries: c.Retries, MaxBody: c.RetryMaxBody, Backoff: o.retryBackoff}
	h.router = NewRouter(c.AllRoutes(), func(u *Upstream) *httputil.ReverseProxy {
		rt := transport
		if len(u.Keys) > 0 {
			u.pool = NewKeyPool(u.Name, u.Keys, KeyPoolOptions{Cooldown: c.KeyCooldown, Rests: o.keyRests, Logger: logger, Observer: o.keyObserver})
			h.pools = append(h.pools, u.pool)
			rt = NewKeyTransport(transport, u.pool, u.Credential.Apply, retry)
		}
		return &httputil.ReverseProxy{
			Rewrite:        func(pr *httputil.ProxyRequest) { h.rewrite(u, pr) },
			Transport:      rt,
			ModifyResponse: modify,
			ErrorHandler:   h.handleError,
			// The standard library already flushes text/event-stream and
			// unknown-length bodies at once; every other body is copied as
			// it arrives, flushed when the copy buffer fills or the body ends.
			ErrorLog:   errorLog,
			BufferPool: copyBuffers,
		}
	})
	if kso, ok := o.keyObserver.(KeyStatesObserver); ok {
		kso.ObserveKeyStates(h.KeyStates)
	}
	h.budgets = newBudgets(c, o.limiter, logger)
	return h
}

// cleanUpstreamHeader applies the response header policy to headers from the
// upstream, final or 1xx: Alt-Svc and, when the proxy owns CORS, the
// upstream's Access-Control-* go.
func (h *Handler) cleanUpstreamHeader(header http.Header) {
	CleanResponse(header)
	if h.access.cors != nil {
		h.access.cors.cleanUpstream(header)
	}
}

// ServeHTTP proxies r to the upstream of its route, after the access checks
// (health route, IP allow-list, CORS preflight, proxy key; see access.go), and logs one
// access-log line. Inside WithAdapter, the record WithAdapter opened is used.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rec := recordFrom(r); rec != nil {
		h.serve(w, r, rec)
		return
	}
	rec, r := h.open(w, r)
	// The server's last bytes (the end of a chunked body) are written after
	// the handler returns: bound them too.
	defer rec.limits.armWrite()
	defer rec.finish(h.observe)
	h.serve(rec, r, rec)
}

// WithAdapter returns what a platform serves: adapter (the platform's wrapper
// around h) inside the access log. The request's access-log record exists
// before the adapter runs, so the adapter can add fields to the line with
// AddLogAttrs, and requests the adapter answers itself (platform-only
// requests) are logged like the rest.
func (h *Handler) WithAdapter(adapter http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, r := h.open(w, r)
		defer rec.limits.armWrite()
		defer rec.finish(h.observe)
		adapter.ServeHTTP(rec, r)
	})
}

// open starts the access-log record of r, with the idle limits on the
// platform's writer w, and marks the connection to be closed after a request
// whose framing a front end could read differently, whoever answers it.
func (h *Handler) open(w http.ResponseWriter, r *http.Request) (*record, *http.Request) {
	closeAfterAmbiguousFraming(w, r)
	rc := http.NewResponseController(w)
	rec := startRecord(w, newIdleLimits(rc, h.cfg))
	return rec, rec.request(r)
}

// serve answers r, whose access-log record is rec, writing to w (rec itself,
// or a platform adapter's writer around it).
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, rec *record) {
	rec.req = r // as the adapter left it: the logged path is the proxied one
	if h.access.serveHealth(w, r) {
		rec.quiet = true
		return
	}
	if h.cfg.RequestTimeout > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), h.cfg.RequestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		rec.req = r
	}
	// The route is chosen on the path as the adapter left it (after a
	// platform prefix is stripped), once.
	rec.up, rec.path, rec.setPath = h.router.Route(r)
	rec.x.Route = rec.up.Name
	if h.observer != nil {
		h.observer.Started(rec.x.Route)
		rec.x.started = true
	}
	h.access.decorate(w, r)
	if screen(w, r, rec.path) || h.access.reject(w, r) {
		return
	}
	// Every real key of the route resting: answered here, like the other
	// answers the proxy makes itself (before full duplex, and before a
	// budget is charged for a request that never reaches the upstream).
	if p := rec.up.pool; p != nil && refuseAllResting(w, r, p) {
		return
	}
	if h.budgets != nil && !h.budgets.admit(w, r, &rec.x) {
		return
	}
	rec.ownBudgetHeaders = !rec.x.Budget.IsZero()
	// Without full duplex, net/http discards and closes the rest of a request
	// body once the first response bytes are written (golang/go#15527), while
	// the upstream may still be reading it: an upstream that answers early
	// would get a cut body and the client an aborted stream. Only a request
	// that goes upstream needs it: in full duplex, net/http writes an answer
	// the proxy makes itself (401, 403, 429...) before it drains the unread
	// body, and the kept-alive connection was then often reset under the
	// client's next request (golang/go#68560; finishBody avoids it for the
	// requests that do go upstream). Writers that are not net/http's
	// (serverless adapters) do not support it and need not.
	rc := http.NewResponseController(w)
	duplex := rc.EnableFullDuplex() == nil
	h.sniffModel(rec, r)
	rec.keepOwnHeaders(h.cleanUpstreamHeader)
	rec.up.proxy.ServeHTTP(w, r)
	if duplex {
		finishBody(rc, r, rec)
	}
}

// finishBody ends, inside the handler, a full-duplex request whose body the
// proxy may not have read to its end (the upstream could not be reached, or
// answered without reading it): the response is flushed, then the body is
// closed, which reads what is left of it, as net/http would after the
// handler returns. net/http does that only after it stopped its background
// read of the connection, and the end of the body then starts one that
// nothing stops: the server panics reading the client's next request
// ("invalid concurrent Body.Read call") and drops the connection
// (golang/go#68560). Done here, the read starts before the handler returns
// and net/http stops it as usual. The reads are bounded by
// OXY_CLIENT_BODY_TIMEOUT, so a client that stalls mid-body cannot hold the
// request (its access-log line, its budget slot) open. An upgraded
// connection, a client that went away, and a body that already failed (a
// stall answered 408, broken framing answered 400: the connection closes
// now, and re-arming the read would hold it one more limit) are left alone.
func finishBody(rc *http.ResponseController, r *http.Request, rec *record) {
	if r.Body == nil || r.ContentLength == 0 || rec.x.Status == 0 || rec.x.Status == http.StatusSwitchingProtocols || rec.clientGone ||
		rec.bodyError() != nil {
		return
	}
	_ = rc.Flush()
	rec.limits.armRead()
	_ = r.Body.Close()
}

// KeyState is the state of one real key of one route.
type KeyState struct {
	// Route names the route (DefaultRouteName or a route of OXY_ROUTES).
	Route string
	KeyStatus
}

// KeyStates returns the state of every real key of every route, routes in
// configured order and keys in theirs, for metrics
// (oxy_upstream_key_available{route,key}), read when they are collected.
func (h *Handler) KeyStates(ctx context.Context) []KeyState {
	var out []KeyState
	for _, p := range h.pools {
		for _, s := range p.Status(ctx) {
			out = append(out, KeyState{Route: p.Route(), KeyStatus: s})
		}
	}
	return out
}

// observe is where every observer reads a finished request's Exchange.
func (h *Handler) observe(x *Exchange) {
	if h.budgets != nil {
		h.budgets.done(x)
	}
	logExchange(h.logger, x)
	if h.observer != nil {
		// A request a platform adapter answered itself never reached
		// routing: it is started now, so every Finished has its Started.
		if !x.started {
			h.observer.Started(x.Route)
		}
		h.observer.Finished(x)
	}
}

// rewrite sends the request to u's target, whatever the client's Host header
// or absolute-form request URI said, so the proxy is never an open relay.
func (h *Handler) rewrite(u *Upstream, pr *httputil.ProxyRequest) {
	pr.SetURL(u.Target)
	// SetURL re-derives the path from the decoded form; forward the client's
	// bytes instead (less the route prefix), so %2F, lower-case escapes and
	// raw UTF-8 arrive unchanged.
	if rec := recordFrom(pr.In); rec != nil && rec.setPath {
		setRawPath(pr.Out.URL, u.Target.EscapedPath()+rec.path)
	}
	// ReverseProxy re-encodes queries it finds ambiguous (";"); the upstream
	// should get the client's query byte for byte: the proxy never parses it.
	pr.Out.URL.RawQuery = joinQuery(u.Target.RawQuery, pr.In.URL.RawQuery)
	h.policy.CleanRequest(pr.Out.Header)
	// With real keys, every credential the client sent is removed; the
	// route's KeyTransport then puts a key in the vendor's way on each
	// attempt, after the header policy, so a platform's strip rules never
	// remove it.
	if len(u.Keys) > 0 {
		removeClientCredentials(pr.Out)
	}
	if h.cfg.StreamUsage {
		addStreamUsage(pr.Out)
	}
	if h.cfg.ForwardClientIP {
		pr.SetXForwarded()
		pr.Out.Header.Del("X-Forwarded-Host")
	}
}

// rawPath returns the path exactly as the client sent it in an origin-form
// request target ("/v1/..."). Absolute-form and odd targets fall back to the
// parsed URL.
func rawPath(r *http.Request) (string, bool) {
	uri := r.RequestURI
	if !strings.HasPrefix(uri, "/") || strings.HasPrefix(uri, "//") {
		return "", false
	}
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	return uri, true
}

// setRawPath makes u's path exactly want on the wire. RawPath carries any
// valid escaping (%2F, lower-case hex); Opaque is the fallback for bytes that
// RawPath cannot hold, such as raw UTF-8.
func setRawPath(u *url.URL, want string) {
	if dec, err := url.PathUnescape(want); err == nil {
		u.Path, u.RawPath = dec, want
	}
	if u.EscapedPath() != want {
		u.Opaque = want
	}
}

func joinQuery(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "&" + b
}

// handleError answers a failed round trip: 502 or 504 with an OpenAI-shaped
// body, or nothing at all (logged as 499) when the client already left. When
// reading the client's body failed, that is the cause: 400 (bad framing) or
// 408 (stalled), and the connection is closed, since the rest of the body
// cannot be skipped.
func (h *Handler) handleError(w http.ResponseWriter, r *http.Request, err error) {
	rec := recordFrom(r)
	var e *APIError
	var clientGone bool
	if be := rec.bodyError(); be != nil {
		e, clientGone = classifyBodyError(be)
		err = withoutAddresses(be)
		w.Header().Set("Connection", "close")
	} else {
		e, clientGone = classify(r, err)
	}
	if rec != nil {
		rec.x.Err = err
		if !clientGone {
			rec.x.UpstreamError = upstreamErrorKind(e)
		}
	}
	if clientGone {
		if rec != nil {
			rec.clientGone = true
		}
		return
	}
	WriteError(w, e)
}

// bufferPool recycles the reverse proxy's body-copy buffers. Without one,
// ReverseProxy allocates a fresh 32 KiB buffer for every response, which was
// the largest single cost per small request in the benchmarks (allocation and
// GC, docs/BENCHMARKS.md).
type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte {
	if p, ok := b.pool.Get().(*[]byte); ok {
		return *p
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == 32<<10 {
		buf = buf[:cap(buf)]
		b.pool.Put(&buf)
	}
}

var copyBuffers httputil.BufferPool = &bufferPool{}

// jsonDurations writes the access log's durations in JSON as milliseconds,
// numbers a log query can compare and sum ("duration_ms":812.5), instead of
// slog's nanoseconds; text logs keep Go's readable form (duration=812.5ms).
func jsonDurations(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && (a.Key == "duration" || a.Key == "ttfb") && a.Value.Kind() == slog.KindDuration {
		ms := float64(a.Value.Duration().Microseconds()) / 1000
		return slog.Float64(a.Key+"_ms", ms)
	}
	return a
}

// NewLogger returns the slog logger the settings ask for, writing to w.
func NewLogger(c Config, w interface{ Write([]byte) (int, error) }) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		opts.ReplaceAttr = jsonDurations
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
