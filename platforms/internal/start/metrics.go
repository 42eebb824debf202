package start

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/adapters/decoders"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/adapters/metrics"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// coreOptions are the adapters every build hands the core: the br and zstd
// decoders of the usage meter, so that the access log carries usage
// whatever the answer's content coding.
func coreOptions() []core.Option {
	return []core.Option{core.WithDecoders(decoders.All())}
}

// withMetrics sets up OXY_METRICS_ADDR: the Prometheus observer for the core
// and a runner that serves it on its own listener beside runner's. It opens
// the listener now, so that an address in use stops start-up. Event
// runtimes refuse the setting: they freeze the process between invocations
// and route no port to it, so nothing could scrape it.
func withMetrics(p Platform, cfg core.Config, logger *slog.Logger, runner Runner) (Runner, []core.Option, error) {
	if cfg.MetricsAddr == "" {
		return runner, nil, nil
	}
	if !runner.LongLived() {
		return nil, nil, &core.ConfigError{Problems: []string{fmt.Sprintf(
			"OXY_METRICS_ADDR=%q: not available on %s, whose runtime freezes the process between invocations and routes no other port to it; unset it and read the token counts from the access log",
			cfg.MetricsAddr, p.Name)}}
	}
	ln, err := metrics.Listen(cfg.MetricsAddr)
	if err != nil {
		return nil, nil, err
	}
	m := metrics.New()
	return &metricsRunner{Runner: runner, m: m, ln: ln, logger: logger}, []core.Option{core.WithObserver(m), core.WithKeyObserver(m)}, nil
}

// metricsRunner runs the platform's runner and the metrics listener
// together; the listener stops when the runner returns.
type metricsRunner struct {
	Runner
	m      *metrics.Metrics
	ln     net.Listener
	logger *slog.Logger
}

func (r *metricsRunner) Run(ctx context.Context, h http.Handler) error {
	mctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := r.m.Serve(mctx, r.ln, r.logger); err != nil {
			r.logger.Error("metrics listener failed", "error", err.Error())
		}
	}()
	err := r.Runner.Run(ctx, h)
	stop()
	wg.Wait()
	return err
}
