package start

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/adapters/redisstore"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// limiter returns the core options that keep the budgets (OXY_LIMITS) in the
// Redis of OXY_REDIS_URL, shared by every instance, and the function that
// closes it when the runner is done (nil: nothing to close). Without
// OXY_REDIS_URL the core keeps them in memory and there is nothing to build.
// The client does not dial here: a Redis that is down at start-up is the
// core's fail-open or fail-closed case, and start-up on a serverless
// platform stays fast.
func limiter(cfg core.Config, logger *slog.Logger) ([]core.Option, func(), error) {
	if len(cfg.Limits) == 0 {
		return nil, nil, nil
	}
	if cfg.RedisURL == "" {
		logger.Info("budgets counted in this process only (no OXY_REDIS_URL)", "keys_with_limits", len(cfg.Limits))
		return nil, nil, nil
	}
	s, err := redisstore.New(cfg.RedisURL.Reveal(), logger, redisstore.Options{})
	if err != nil {
		return nil, nil, err
	}
	logger.Info("budgets shared in Redis", "redis", s.Addr(), "keys_with_limits", len(cfg.Limits), "fail_closed", cfg.LimitsFailClosed)
	return []core.Option{core.WithLimiter(s)}, func() { _ = s.Close() }, nil
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
