package core

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The key pool: several real upstream keys for one route (issue 13). Requests
// take the healthy keys in turn; a key the upstream refuses rests for a while
// and is then tried again, so a key is never benched forever. Keys are named
// only by their configured position, "#1", "#2"..., in logs and metrics.

// KeyRests stores which keys of a route are resting, and until when. The pool
// reads it before every pick and writes it when a key must rest. The in-memory
// store (NewMemoryKeyRests) serves one instance; a shared store (Redis) lets
// every instance learn at once that a key is exhausted. Keys are identified by
// route name and 1-based position, never by value.
type KeyRests interface {
	// Rest records that key n of route rests until until. A rest already
	// recorded that ends later is kept. started reports that the key was not
	// resting before, so that a rest is logged once however many requests
	// saw the refusal at the same time.
	Rest(ctx context.Context, route string, n int, until time.Time) (started bool, err error)
	// Resting fills until[i] with the end of the rest of key i+1 of route: a
	// time in the past (or the zero time) for a key that is available.
	Resting(ctx context.Context, route string, until []time.Time) error
}

// NewMemoryKeyRests returns a KeyRests that keeps the rests in this process.
func NewMemoryKeyRests() KeyRests { return &memoryKeyRests{routes: map[string][]time.Time{}} }

type memoryKeyRests struct {
	mu     sync.Mutex
	routes map[string][]time.Time
}

var _ KeyRests = (*memoryKeyRests)(nil)

func (m *memoryKeyRests) Rest(_ context.Context, route string, n int, until time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.routes[route]
	if len(r) < n {
		r = append(r, make([]time.Time, n-len(r))...)
		m.routes[route] = r
	}
	prev := r[n-1]
	if prev.Before(until) {
		r[n-1] = until
	}
	return !prev.After(time.Now()), nil
}

func (m *memoryKeyRests) Resting(_ context.Context, route string, until []time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := copy(until, m.routes[route])
	clear(until[n:])
	return nil
}

// KeyObserver is told of the key pools' events as they happen, for metrics
// (the Prometheus adapter: oxy_retries_total{route,reason}, rests by key).
// The same retries are in each request's Exchange (Retries) at its end, and
// each key's availability is read with Handler.KeyStates.
type KeyObserver interface {
	// KeyRested is called once when key ("#2") of route starts resting.
	KeyRested(route, key, reason string, until time.Time)
	// Retried is called for every retry, with the reason the previous
	// attempt failed.
	Retried(route, reason string)
}

// KeyStatesObserver is a KeyObserver that also reports each key's
// availability (the gauge oxy_upstream_key_available, read when metrics are
// collected): New hands it Handler.KeyStates.
type KeyStatesObserver interface {
	KeyObserver
	// ObserveKeyStates is called once, by New, with the function that
	// returns every key's state at that moment.
	ObserveKeyStates(states func(context.Context) []KeyState)
}

// KeyPoolOptions are a key pool's settings.
type KeyPoolOptions struct {
	// Cooldown is how long a key rests after an answer that says the key
	// itself is bad or out of money (OXY_KEY_COOLDOWN).
	Cooldown time.Duration
	// Rests stores the rests; nil keeps them in memory.
	Rests KeyRests
	// Logger receives one line per rest; nil discards them.
	Logger *slog.Logger
	// Observer, if set, is told of rests and retries.
	Observer KeyObserver
}

// DefaultKeyCooldown is OXY_KEY_COOLDOWN's default.
const DefaultKeyCooldown = 10 * time.Minute

// KeyPool holds the real keys of one route and which of them may be used.
// It is safe for concurrent use.
type KeyPool struct {
	route    string
	keys     []Secret
	labels   []string
	cooldown time.Duration
	rests    KeyRests
	logger   *slog.Logger
	observer KeyObserver
	next     atomic.Uint64
}

// NewKeyPool returns the pool of keys (in configured order) for route.
func NewKeyPool(route string, keys []Secret, o KeyPoolOptions) *KeyPool {
	p := &KeyPool{route: route, keys: keys, cooldown: o.Cooldown, rests: o.Rests, logger: o.Logger, observer: o.Observer}
	if p.cooldown <= 0 {
		p.cooldown = DefaultKeyCooldown
	}
	if p.rests == nil {
		p.rests = NewMemoryKeyRests()
	}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	for i := range keys {
		p.labels = append(p.labels, KeyLabel(i))
	}
	return p
}

// KeyLabel names the key at index i (0-based) in logs and metrics: "#1" for
// the first configured key. It says nothing about the key's value.
func KeyLabel(i int) string { return "#" + strconv.Itoa(i+1) }

// Route returns the name of the route the pool serves.
func (p *KeyPool) Route() string { return p.route }

// Len returns the number of keys.
func (p *KeyPool) Len() int { return len(p.keys) }

// KeyStatus is one key's state, as KeyPool.Status reports it.
type KeyStatus struct {
	// Key is the key's label, "#1", "#2"...
	Key string
	// Available reports that the key is not resting.
	Available bool
	// Until is when a resting key may be used again.
	Until time.Time
}

// Status returns every key's state, in configured order, for metrics
// (Handler.KeyStates).
func (p *KeyPool) Status(ctx context.Context) []KeyStatus {
	var buf restBuf
	until := p.resting(ctx, buf[:])
	now := time.Now()
	out := make([]KeyStatus, len(p.keys))
	for i := range out {
		out[i] = KeyStatus{Key: p.labels[i], Available: !until[i].After(now)}
		if !out[i].Available {
			out[i].Until = until[i]
		}
	}
	return out
}

// resting reads the rests into buf (allocating only for more keys than it
// holds). A store that fails (a shared store that cannot be reached) counts
// every key as available: the upstream will say again which key it refuses,
// whereas failing closed would refuse every request.
func (p *KeyPool) resting(ctx context.Context, buf []time.Time) []time.Time {
	until := buf[:0]
	if n := len(p.keys); n <= cap(buf) {
		until = buf[:n]
	} else {
		until = make([]time.Time, n)
	}
	var err error
	if m, ok := p.rests.(*memoryKeyRests); ok {
		err = m.Resting(ctx, p.route, until) // a direct call: until stays on the caller's stack
	} else {
		tmp := make([]time.Time, len(until))
		err = p.rests.Resting(ctx, p.route, tmp)
		copy(until, tmp)
	}
	if err != nil {
		clear(until)
	}
	return until
}

// restBuf is the stack buffer of a pick: enough for the key lists people configure.
type restBuf [16]time.Time

// allResting reports whether every key rests, and when the first comes back.
func (p *KeyPool) allResting(ctx context.Context) (soonest time.Time, all bool) {
	var buf restBuf
	until := p.resting(ctx, buf[:])
	now := time.Now()
	if len(until) == 0 {
		return time.Time{}, false
	}
	for _, u := range until {
		if !u.After(now) {
			return time.Time{}, false
		}
		if soonest.IsZero() || u.Before(soonest) {
			soonest = u
		}
	}
	return soonest, true
}

// pick chooses the key for the next attempt: the next available key in
// rotation that has not been tried yet; if there is none and reuse is set, an
// available key that was tried. ok is false when no key may be used; soonest
// is then when the first resting key comes back (zero if none is resting).
func (p *KeyPool) pick(ctx context.Context, tried []int, reuse bool) (key int, soonest time.Time, ok bool) {
	var buf restBuf
	until := p.resting(ctx, buf[:])
	now := time.Now()
	n := uint64(len(p.keys))
	start := p.next.Add(1) - 1
	fallback := -1
	for i := range n {
		k := int((start + i) % n)
		switch {
		case until[k].After(now):
			if soonest.IsZero() || until[k].Before(soonest) {
				soonest = until[k]
			}
		case contains(tried, k):
			if fallback < 0 {
				fallback = k
			}
		default:
			return k, time.Time{}, true
		}
	}
	if reuse && fallback >= 0 {
		return fallback, time.Time{}, true
	}
	return -1, soonest, false
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// rest benches key k for d, logging and reporting it once when the rest
// starts. status is the upstream's answer that caused it.
func (p *KeyPool) rest(ctx context.Context, k int, d time.Duration, reason string, status int) {
	until := time.Now().Add(d)
	started, err := p.rests.Rest(ctx, p.route, k+1, until)
	if err != nil {
		p.logger.LogAttrs(ctx, slog.LevelWarn, "upstream key rest not recorded",
			slog.String("route", p.route), slog.String("key", p.labels[k]), slog.String("error", err.Error()))
	}
	if !started {
		return
	}
	p.logger.LogAttrs(ctx, slog.LevelWarn, "upstream key resting",
		slog.String("route", p.route), slog.String("key", p.labels[k]), slog.String("reason", reason),
		slog.Int("status", status), slog.Duration("for", d))
	if p.observer != nil {
		p.observer.KeyRested(p.route, p.labels[k], reason, until)
	}
}
