package redisstore

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// Resting keys of the key pools (core.KeyRests), shared in Redis: when one
// instance learns that a real key is exhausted (429) or dead (401), the
// others stop using it too, instead of each finding out with a failed
// request of its own. Each route's rests are one hash, field = the key's
// position, value = the end of its rest (Unix ms), expiring with its last
// rest. Keys are named by position only, never by value.
//
// Every pick of a key reads the rests, so they are cached for restsCacheTTL:
// a rest recorded by another instance is seen within that time. A copy in
// this process (core's in-memory KeyRests) is always kept too, so while
// Redis cannot be reached the pool still rests the keys this instance saw
// fail, instead of forgetting every rest.

// restsCacheTTL is how long the rests read from Redis are reused.
const restsCacheTTL = time.Second

type keyRests struct {
	s     *Store
	local core.KeyRests
	ttl   time.Duration

	mu    sync.Mutex
	cache map[string]cachedRests

	downUntil atomic.Int64 // UnixNano; Redis is not asked before
	down      atomic.Bool
}

type cachedRests struct {
	read  time.Time
	until []time.Time // by position - 1
}

var _ core.KeyRests = (*keyRests)(nil)

// KeyRests returns the key pools' rests kept in this Redis (see
// core.KeyPool), with a copy in this process.
func (s *Store) KeyRests() core.KeyRests {
	ttl := s.restsCacheTTL
	if ttl == 0 {
		ttl = restsCacheTTL
	}
	return &keyRests{s: s, local: core.NewMemoryKeyRests(), ttl: ttl, cache: map[string]cachedRests{}}
}

func restsKey(route string) string { return "oxy:rests:{" + route + "}" }

// restScript records a rest unless a later one is recorded already, keeps
// the hash until its last rest ends, and reports whether the key was not
// resting before (so that every instance together logs the rest once).
//
// KEYS: the route's hash. ARGV: position, rest end (ms), now (ms).
var restScript = redis.NewScript(`
local prev = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or 0)
if prev < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
local last = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  local x = tonumber(v)
  if x > last then last = x end
end
redis.call('PEXPIREAT', KEYS[1], last)
if prev <= tonumber(ARGV[3]) then return 1 end
return 0
`)

// Rest implements core.KeyRests.
func (k *keyRests) Rest(ctx context.Context, route string, n int, until time.Time) (bool, error) {
	started, _ := k.local.Rest(ctx, route, n, until)
	if !k.ask() {
		return started, nil
	}
	res, err := restScript.Run(ctx, k.s.client, []string{restsKey(route)}, n, until.UnixMilli(), time.Now().UnixMilli()).Int64()
	if err != nil {
		k.failed(err)
		return started, nil
	}
	k.recovered()
	k.mu.Lock()
	if c, ok := k.cache[route]; ok && n <= len(c.until) && c.until[n-1].Before(until) {
		c.until[n-1] = until
	}
	k.mu.Unlock()
	return res == 1, nil
}

// Resting implements core.KeyRests: the later of this process's and Redis's
// rest for each key.
func (k *keyRests) Resting(ctx context.Context, route string, until []time.Time) error {
	if err := k.local.Resting(ctx, route, until); err != nil {
		return err
	}
	shared, ok := k.shared(ctx, route, len(until))
	if !ok {
		return nil
	}
	for i := range until {
		if i < len(shared) && shared[i].After(until[i]) {
			until[i] = shared[i]
		}
	}
	return nil
}

// shared returns the route's rests in Redis, from the cache while it is fresh.
func (k *keyRests) shared(ctx context.Context, route string, n int) ([]time.Time, bool) {
	now := time.Now()
	k.mu.Lock()
	c, ok := k.cache[route]
	k.mu.Unlock()
	if ok && now.Sub(c.read) < k.ttl && len(c.until) >= n {
		return c.until, true
	}
	if !k.ask() {
		return nil, false
	}
	fields, err := k.s.client.HGetAll(ctx, restsKey(route)).Result()
	if err != nil {
		k.failed(err)
		return nil, false
	}
	k.recovered()
	c = cachedRests{read: now, until: make([]time.Time, n)}
	for f, v := range fields {
		pos, err1 := strconv.Atoi(f)
		ms, err2 := strconv.ParseInt(v, 10, 64)
		if err1 == nil && err2 == nil && pos >= 1 && pos <= n {
			c.until[pos-1] = time.UnixMilli(ms)
		}
	}
	k.mu.Lock()
	k.cache[route] = c
	k.mu.Unlock()
	return c.until, true
}

// ask reports whether Redis may be asked: not within a second of a failure.
func (k *keyRests) ask() bool { return time.Now().UnixNano() >= k.downUntil.Load() }

func (k *keyRests) failed(err error) {
	k.downUntil.Store(time.Now().Add(time.Second).UnixNano())
	if k.down.CompareAndSwap(false, true) {
		k.s.logger.Error("redis unreachable: resting upstream keys are kept in this process only until it is back", "error", err.Error())
	}
}

func (k *keyRests) recovered() {
	if k.down.CompareAndSwap(true, false) {
		k.s.logger.Info("redis reachable again: resting upstream keys shared")
	}
}
