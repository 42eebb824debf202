// Package redisstore keeps the proxy's shared state in Redis, so that any
// number of proxy instances behind a load balancer, or a serverless
// platform's many instances, share one budget per proxy key (OXY_LIMITS)
// instead of each counting its own, and learn from each other which real
// keys are resting. It is the adapter behind core.Limiter and
// core.KeyRests; the core itself imports no Redis package.
//
// Every update is atomic in Redis: Admit is one Lua script that checks every
// limit and counts the request only if all allow it; Done is one MULTI
// transaction; a key's rest is one script. Each costs one round trip.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// Store is a core.Limiter whose counters live in Redis.
type Store struct {
	client        *redis.Client
	logger        *slog.Logger
	instance      string // names this process's in-flight leases
	leaseTTL      time.Duration
	restsCacheTTL time.Duration

	mu     sync.Mutex
	next   uint64
	leases map[string]string // lease -> its sorted set, while in flight
	stop   chan struct{}
	done   chan struct{}
}

var _ core.Limiter = (*Store)(nil)

// Timeouts used unless the URL's query sets them (dial_timeout=...): a slow
// Redis must not hold requests for long, since the proxy can serve without it.
const (
	dialTimeout = 2 * time.Second
	ioTimeout   = time.Second
)

// defaultLeaseTTL is how long an in-flight slot stays taken without being
// renewed: a process that dies holding slots frees them after this. Each
// process renews its own slots three times per TTL.
const defaultLeaseTTL = 30 * time.Second

// Options tune a Store; the zero value is right for production.
type Options struct {
	// LeaseTTL replaces defaultLeaseTTL (tests shorten it).
	LeaseTTL time.Duration
	// RestsCacheTTL replaces restsCacheTTL (tests shorten it).
	RestsCacheTTL time.Duration
}

// New connects to the Redis at rawURL (OXY_REDIS_URL, already checked by
// core.CheckRedisURL). It does not wait for Redis: the client dials when it
// is first used and again whenever a connection breaks, so a Redis that is
// down at start-up or later is the core's fail-open or fail-closed case, not
// a reason to stop. Errors never contain the URL or its password.
func New(rawURL string, logger *slog.Logger, o Options) (*Store, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("OXY_REDIS_URL: %s", redact(err.Error(), rawURL))
	}
	if !strings.Contains(rawURL, "dial_timeout=") {
		opts.DialTimeout = dialTimeout
	}
	if !strings.Contains(rawURL, "read_timeout=") {
		opts.ReadTimeout = ioTimeout
	}
	if !strings.Contains(rawURL, "write_timeout=") {
		opts.WriteTimeout = ioTimeout
	}
	if !strings.Contains(rawURL, "max_retries=") {
		// The core backs off from a failing store by itself; go-redis's
		// own retries would only hold the request longer.
		opts.MaxRetries = -1
	}
	opts.DialerRetries = 1
	opts.ContextTimeoutEnabled = true
	// Neither is needed, and each is a command more on every new connection.
	opts.DisableIdentity = true
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if logger != nil {
		redis.SetLogger(slogLogger{logger})
	} else {
		logger = slog.New(slog.DiscardHandler)
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	s := &Store{
		client:        redis.NewClient(opts),
		logger:        logger,
		instance:      hex.EncodeToString(id),
		leaseTTL:      defaultLeaseTTL,
		restsCacheTTL: o.RestsCacheTTL,
		leases:        map[string]string{},
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
	}
	if o.LeaseTTL > 0 {
		s.leaseTTL = o.LeaseTTL
	}
	go s.renewLeases()
	return s, nil
}

// redact removes the URL and its password from a message.
func redact(msg, rawURL string) string {
	msg = strings.ReplaceAll(msg, rawURL, "[redacted]")
	if opts, err := redis.ParseURL(rawURL); err == nil && opts.Password != "" {
		msg = strings.ReplaceAll(msg, opts.Password, "[redacted]")
	}
	if _, rest, ok := strings.Cut(rawURL, "://"); ok {
		if userinfo, _, ok := strings.Cut(rest, "@"); ok && userinfo != "" {
			msg = strings.ReplaceAll(msg, userinfo, "[redacted]")
		}
	}
	return msg
}

// Addr names the Redis server and database, for logs (never the password).
func (s *Store) Addr() string {
	o := s.client.Options()
	return o.Addr + "/" + strconv.Itoa(o.DB)
}

// Ping checks that Redis answers, for start-up logs and tests.
func (s *Store) Ping(ctx context.Context) error { return s.client.Ping(ctx).Err() }

// Close stops renewing leases and closes the connections.
func (s *Store) Close() error {
	s.mu.Lock()
	select {
	case <-s.stop:
		s.mu.Unlock()
		return nil
	default:
		close(s.stop)
	}
	s.mu.Unlock()
	<-s.done
	return s.client.Close()
}

// keys returns the Redis keys of b's counters at now. The caller's label is
// a hash tag ({...}), so one caller's keys share a Redis Cluster slot and a
// script may touch them together. Labels cannot hold braces (names are
// A-Z a-z 0-9 . _ @ -, or key#N).
func keys(caller string, now time.Time) (rpm, tpm, tpd, inflight string) {
	minute, _ := core.Window(core.LimitRPM, now)
	day, _ := core.Window(core.LimitTPD, now)
	base := "oxy:{" + caller + "}:"
	m := strconv.FormatInt(minute, 10)
	return base + "rpm:" + m, base + "tpm:" + m, base + "tpd:" + strconv.FormatInt(day, 10), base + "inflight"
}

// expiry returns when the counters of the windows of now can go: a while
// after their window ends, so that a clock a little behind still finds them.
func expiry(now time.Time) (minute, day int64) {
	_, m := core.Window(core.LimitRPM, now)
	_, d := core.Window(core.LimitTPD, now)
	return m.Add(time.Minute).Unix(), d.Add(time.Hour).Unix()
}

// admitScript checks every limit of one caller and, only if all allow the
// request, counts it: one request this minute, one lease in the in-flight
// sorted set (scored by its expiry, so leases of a dead process age out).
//
// KEYS: rpm counter, tpm counter, tpd counter, in-flight set.
// ARGV: rpm, tpm, tpd, concurrent limits (0: none), now (ms), lease,
// lease expiry (ms), minute counter expiry (unix s).
// Returns {refused limit or "", requests, minute tokens, day tokens, in flight}.
var admitScript = redis.NewScript(`
local rpm, tpm, tpd, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local requests = tonumber(redis.call('GET', KEYS[1]) or 0)
local mtokens = tonumber(redis.call('GET', KEYS[2]) or 0)
local dtokens = tonumber(redis.call('GET', KEYS[3]) or 0)
local inflight = 0
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[5])
  inflight = redis.call('ZCARD', KEYS[4])
end
local refused = ''
if tpd > 0 and dtokens >= tpd then refused = 'tpd'
elseif rpm > 0 and requests >= rpm then refused = 'rpm'
elseif tpm > 0 and mtokens >= tpm then refused = 'tpm'
elseif conc > 0 and inflight >= conc then refused = 'concurrent'
end
if refused == '' then
  if rpm > 0 then
    requests = redis.call('INCR', KEYS[1])
    redis.call('EXPIREAT', KEYS[1], ARGV[8])
  end
  if conc > 0 then
    redis.call('ZADD', KEYS[4], ARGV[7], ARGV[6])
    redis.call('PEXPIREAT', KEYS[4], ARGV[7])
    inflight = inflight + 1
  end
end
return {refused, requests, mtokens, dtokens, inflight}
`)

// Admit implements core.Limiter.
func (s *Store) Admit(ctx context.Context, b core.Budget, now time.Time) (core.Verdict, error) {
	rpmKey, tpmKey, tpdKey, inflightKey := keys(b.Caller, now)
	minuteExpiry, _ := expiry(now)
	lease := ""
	if b.Concurrent > 0 {
		lease = s.newLease()
	}
	leaseExpiry := now.Add(s.leaseTTL).UnixMilli()
	res, err := admitScript.Run(ctx, s.client, []string{rpmKey, tpmKey, tpdKey, inflightKey},
		b.RPM, b.TPM, b.TPD, b.Concurrent, now.UnixMilli(), lease, leaseExpiry, minuteExpiry).Slice()
	if err != nil {
		return core.Verdict{}, fmt.Errorf("redis: %w", err)
	}
	refused, used, err := parseAdmit(res)
	if err != nil {
		return core.Verdict{}, err
	}
	if refused != "" {
		return core.Refusal(refused, used, now), nil
	}
	v := core.Verdict{Allowed: true, Used: used}
	if lease != "" {
		s.mu.Lock()
		s.leases[lease] = inflightKey
		s.mu.Unlock()
		v.Lease = lease
	}
	return v, nil
}

func parseAdmit(res []any) (core.LimitKind, core.Limits, error) {
	if len(res) != 5 {
		return "", core.Limits{}, errors.New("redis: unexpected answer from the admit script")
	}
	refused, _ := res[0].(string)
	var n [4]int64
	for i := range n {
		v, ok := res[i+1].(int64)
		if !ok {
			return "", core.Limits{}, errors.New("redis: unexpected answer from the admit script")
		}
		n[i] = v
	}
	return core.LimitKind(refused), core.Limits{RPM: n[0], TPM: n[1], TPD: n[2], Concurrent: n[3]}, nil
}

func (s *Store) newLease() string {
	s.mu.Lock()
	s.next++
	n := s.next
	s.mu.Unlock()
	return s.instance + ":" + strconv.FormatUint(n, 10)
}

// Done implements core.Limiter: one MULTI transaction frees the lease and
// adds the tokens to the minute's and the day's counters.
func (s *Store) Done(ctx context.Context, b core.Budget, lease string, tokens int64, now time.Time) error {
	_, tpmKey, tpdKey, inflightKey := keys(b.Caller, now)
	minuteExpiry, dayExpiry := expiry(now)
	if lease != "" {
		s.mu.Lock()
		delete(s.leases, lease)
		s.mu.Unlock()
	}
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if tokens > 0 && b.TPM > 0 {
			p.IncrBy(ctx, tpmKey, tokens)
			p.ExpireAt(ctx, tpmKey, time.Unix(minuteExpiry, 0))
		}
		if tokens > 0 && b.TPD > 0 {
			p.IncrBy(ctx, tpdKey, tokens)
			p.ExpireAt(ctx, tpdKey, time.Unix(dayExpiry, 0))
		}
		if lease != "" {
			p.ZRem(ctx, inflightKey, lease)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// renewLeases pushes back the expiry of this process's in-flight leases, so
// that a request longer than the lease TTL (a long stream, a WebSocket)
// keeps its slot while the process lives.
func (s *Store) renewLeases() {
	defer close(s.done)
	tick := time.NewTicker(s.leaseTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		held := make(map[string]string, len(s.leases))
		for l, k := range s.leases {
			held[l] = k
		}
		s.mu.Unlock()
		if len(held) == 0 {
			continue
		}
		expires := float64(time.Now().Add(s.leaseTTL).UnixMilli())
		ctx, cancel := context.WithTimeout(context.Background(), s.leaseTTL/3)
		_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for lease, key := range held {
				// XX: a lease that already aged out (Redis was away for
				// longer than the TTL) is not brought back; its slot may
				// have been given to another request meanwhile.
				p.ZAddXX(ctx, key, redis.Z{Score: expires, Member: lease})
				p.PExpireAt(ctx, key, time.UnixMilli(int64(expires)))
			}
			return nil
		})
		cancel()
	}
}

// slogLogger sends go-redis's own log lines to the proxy's log at debug level.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Printf(ctx context.Context, format string, v ...any) {
	s.l.Debug("redis: " + fmt.Sprintf(format, v...))
}
