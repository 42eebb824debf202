// Package metrics exports the proxy's traffic to Prometheus with
// github.com/prometheus/client_golang: it implements core.Observer, the
// interface through which the core reports each request, and serves the
// registry on its own listener (OXY_METRICS_ADDR), never on the proxy's port.
// It lives outside core so that core imports the standard library only.
//
// The metrics and the OpenTelemetry GenAI semantic conventions they
// correspond to are listed in the README ("Metrics").
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core/usage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxModels is how many distinct model names get their own label value;
// later ones are counted under OtherModel. Clients choose the model a
// request names, so without a bound a client could create series without
// end by inventing names.
const MaxModels = 300

// OtherModel is the model label of every model past the first MaxModels.
const OtherModel = "other"

// maxLabelLen bounds a label value's bytes (a model name is a few dozen).
const maxLabelLen = 128

// Buckets of the latency histograms, those the OpenTelemetry GenAI
// conventions recommend for gen_ai.client.operation.duration and
// gen_ai.server.time_to_first_token: answers take from milliseconds to minutes.
var (
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, 163.84, 327.68, 655.36}
	ttfbBuckets     = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60}
)

// Metrics is the Prometheus observer. Build it once with New; it is safe for
// concurrent use.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	tokens   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ttfb     *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	upErrors *prometheus.CounterVec
	retries  *prometheus.CounterVec
	rests    *prometheus.CounterVec
	keys     keyAvailability
	limited  *prometheus.CounterVec
	unlimit  *prometheus.CounterVec
	left     *prometheus.GaugeVec
	kinds    []core.LimitKind
	models   labelSet
}

var (
	_ core.Observer          = (*Metrics)(nil)
	_ core.KeyStatesObserver = (*Metrics)(nil)
)

// New returns the observer with its own registry, which also holds the Go
// runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxy_requests_total",
			Help: "Requests answered, by route, model, caller (proxy key name) and HTTP status (499: the client went away).",
		}, []string{"route", "model", "caller", "code"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxy_tokens_total",
			Help: "Tokens the upstream reported, by type: input (cached included), output (reasoning included), cached_input, reasoning.",
		}, []string{"route", "model", "caller", "type"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "oxy_request_duration_seconds",
			Help:    "Time from the request's arrival to the end of its answer.",
			Buckets: durationBuckets,
		}, []string{"route"}),
		ttfb: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "oxy_time_to_first_byte_seconds",
			Help:    "Time from the request's arrival to the answer's status and headers (for a stream, its start).",
			Buckets: ttfbBuckets,
		}, []string{"route"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "oxy_in_flight_requests",
			Help: "Requests being answered now (streams included).",
		}, []string{"route"}),
		upErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxy_upstream_errors_total",
			Help: "Upstream failures, by kind: unreachable, timeout, failed (bad or closed response), aborted (cut mid-body), stream_error (an error event inside a 200 stream).",
		}, []string{"route", "kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxy_retries_total",
			Help: "Upstream attempts retried with another key (or the same one), by the reason the previous attempt failed.",
		}, []string{"route", "reason"}),
		rests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxy_upstream_key_rests_total",
			Help: "Times a real key of a route started resting, by key position (#1, #2...) and reason.",
		}, []string{"route", "key", "reason"}),
		keys: keyAvailability{desc: prometheus.NewDesc("oxy_upstream_key_available",
			"1 while a real key of a route may be used, 0 while it rests (after a 429, 401, 403...), by key position (#1, #2...).",
			[]string{"route", "key"}, nil)},
		// Budgets (OXY_LIMITS). The caller label takes only the names of
		// configured proxy keys: a refused key never gets this far.
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxy_limited_total",
			Help: "Requests refused by their proxy key's budget, by caller and limit: rpm, tpm, concurrent, tpd, or unavailable (the limits' store could not be asked and OXY_LIMITS_FAIL_CLOSED is set).",
		}, []string{"caller", "limit"}),
		unlimit: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oxy_limits_unchecked_total",
			Help: "Requests of callers with limits served without them because the limits' store (Redis) could not be asked (fail open).",
		}, []string{"caller"}),
		left: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "oxy_budget_remaining",
			Help: "What was left of each limit of a caller's budget at its latest request: requests this minute (rpm), tokens this minute (tpm), requests in flight (concurrent), tokens today (tpd).",
		}, []string{"caller", "limit"}),
		kinds:  core.LimitKinds(),
		models: labelSet{max: MaxModels, seen: map[string]struct{}{}},
	}
	m.reg.MustRegister(m.requests, m.tokens, m.duration, m.ttfb, m.inFlight, m.upErrors, m.retries, m.rests, &m.keys,
		m.limited, m.unlimit, m.left,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry, for tests and embedders that add their own
// collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Started counts a request in flight.
func (m *Metrics) Started(route string) {
	m.inFlight.WithLabelValues(label(route)).Inc()
}

// Finished records a request's exchange once it is answered.
func (m *Metrics) Finished(x *core.Exchange) {
	route := label(x.Route)
	m.inFlight.WithLabelValues(route).Dec()
	model := m.models.bound(label(x.Model))
	caller := x.Caller
	if caller == "" {
		caller = "anonymous"
	}
	caller = label(caller)
	m.requests.WithLabelValues(route, model, caller, strconv.Itoa(x.Status)).Inc()
	m.duration.WithLabelValues(route).Observe(x.Duration.Seconds())
	if x.TTFB > 0 {
		m.ttfb.WithLabelValues(route).Observe(x.TTFB.Seconds())
	}
	u := x.Usage
	for _, t := range [...]struct {
		f    usage.Field
		name string
		n    int64
	}{
		{usage.FieldInput, "input", u.Input},
		{usage.FieldOutput, "output", u.Output},
		{usage.FieldCachedInput, "cached_input", u.CachedInput},
		{usage.FieldReasoning, "reasoning", u.Reasoning},
	} {
		if u.Has(t.f) && t.n > 0 {
			m.tokens.WithLabelValues(route, model, caller, t.name).Add(float64(t.n))
		}
	}
	if x.UpstreamError != "" {
		m.upErrors.WithLabelValues(route, x.UpstreamError).Inc()
	}
	m.budget(x, caller)
}

// budget records what x says about its caller's budget.
func (m *Metrics) budget(x *core.Exchange, caller string) {
	if x.Limited != "" {
		m.limited.WithLabelValues(caller, string(x.Limited)).Inc()
	}
	if x.Unchecked {
		m.unlimit.WithLabelValues(caller).Inc()
	}
	if x.Budget.IsZero() || x.Unchecked || x.Limited == core.LimitUnavailable {
		return
	}
	for _, k := range m.kinds {
		if x.Budget.Of(k) > 0 {
			m.left.WithLabelValues(caller, string(k)).Set(float64(x.Left.Of(k)))
		}
	}
}

// Retried counts a retry of the key pool (core.KeyObserver).
func (m *Metrics) Retried(route, reason string) {
	m.retries.WithLabelValues(label(route), label(reason)).Inc()
}

// KeyRested counts a key starting to rest (core.KeyObserver). Keys are named
// by position only, never by value.
func (m *Metrics) KeyRested(route, key, reason string, _ time.Time) {
	m.rests.WithLabelValues(label(route), label(key), label(reason)).Inc()
}

// ObserveKeyStates makes oxy_upstream_key_available read states when the
// registry is collected (core.KeyStatesObserver; core.New calls it).
func (m *Metrics) ObserveKeyStates(states func(context.Context) []core.KeyState) {
	m.keys.states.Store(&states)
}

// keyAvailability is the collector of oxy_upstream_key_available: one gauge
// per real key of every route, read from the core at each scrape, so it is
// never stale and costs nothing between scrapes.
type keyAvailability struct {
	desc   *prometheus.Desc
	states atomic.Pointer[func(context.Context) []core.KeyState]
}

func (k *keyAvailability) Describe(ch chan<- *prometheus.Desc) { ch <- k.desc }

func (k *keyAvailability) Collect(ch chan<- prometheus.Metric) {
	states := k.states.Load()
	if states == nil {
		return
	}
	for _, s := range (*states)(context.Background()) {
		v := 0.0
		if s.Available {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(k.desc, prometheus.GaugeValue, v, label(s.Route), label(s.Key))
	}
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Listen opens the metrics listener on addr (OXY_METRICS_ADDR), so that a
// bad address stops start-up before the proxy serves.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s (OXY_METRICS_ADDR): %w", addr, err)
	}
	return ln, nil
}

// Serve serves /metrics on ln until ctx ends.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener, logger *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	logger.Info("metrics listening", "addr", ln.Addr().String(), "path", "/metrics")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// label makes s a valid, bounded label value: valid UTF-8, at most
// maxLabelLen bytes.
func label(s string) string {
	if len(s) <= maxLabelLen && utf8.ValidString(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	for len(s) > maxLabelLen {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// labelSet admits the first max distinct values; later ones become
// OtherModel.
type labelSet struct {
	mu   sync.RWMutex
	max  int
	seen map[string]struct{}
}

func (l *labelSet) bound(v string) string {
	l.mu.RLock()
	_, ok := l.seen[v]
	full := len(l.seen) >= l.max
	l.mu.RUnlock()
	if ok || v == "" {
		return v
	}
	if full {
		return OtherModel
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seen) >= l.max {
		if _, ok := l.seen[v]; !ok {
			return OtherModel
		}
		return v
	}
	l.seen[v] = struct{}{}
	return v
}
