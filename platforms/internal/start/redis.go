package start

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/adapters/redisstore"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// shared returns the core options that keep what instances share in the
// Redis of OXY_REDIS_URL: the budgets' counters (OXY_LIMITS) and the resting
// real keys of the routes with key pools. It also returns the function that
// closes the store when the runner is done (nil: nothing to close). Without
// OXY_REDIS_URL the core keeps both in memory and there is nothing to build.
// The client does not dial here: a Redis that is down at start-up is the
// core's fail-open or fail-closed case, and start-up on a serverless
// platform stays fast.
func shared(cfg core.Config, logger *slog.Logger) ([]core.Option, func(), error) {
	pools := 0
	for _, r := range cfg.AllRoutes() {
		if len(r.Keys) > 0 {
			pools++
		}
	}
	switch {
	case cfg.RedisURL == "" && len(cfg.Limits) > 0:
		logger.Info("budgets counted in this process only (no OXY_REDIS_URL)", "keys_with_limits", len(cfg.Limits))
		return nil, nil, nil
	case cfg.RedisURL == "":
		return nil, nil, nil
	case len(cfg.Limits) == 0 && pools == 0:
		logger.Warn("OXY_REDIS_URL is set, but there is nothing to share: no OXY_LIMITS and no route with real keys")
		return nil, nil, nil
	}
	s, err := redisstore.New(cfg.RedisURL.Reveal(), logger, redisstore.Options{})
	if err != nil {
		return nil, nil, err
	}
	var opts []core.Option
	if len(cfg.Limits) > 0 {
		opts = append(opts, core.WithLimiter(s))
	}
	if pools > 0 {
		opts = append(opts, core.WithKeyRests(s.KeyRests()))
	}
	logger.Info("shared in Redis", "redis", s.Addr(), "keys_with_limits", len(cfg.Limits),
		"routes_with_key_pools", pools, "fail_closed", cfg.LimitsFailClosed)
	return opts, func() { _ = s.Close() }, nil
}

// cleanupRunner runs cleanup once the platform's runner returns.
type cleanupRunner struct {
	Runner
	cleanup func()
}

func (r cleanupRunner) Run(ctx context.Context, h http.Handler) error {
	defer r.cleanup()
	return r.Runner.Run(ctx, h)
}
