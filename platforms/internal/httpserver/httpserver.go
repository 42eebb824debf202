// Package httpserver runs the core as an HTTP server on OXY_HOST:OXY_PORT:
// the runner of the plain server build and of the serverless platforms whose
// runtime forwards HTTP to a port (Tencent SCF web functions, Aliyun FC
// custom runtimes).
package httpserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"
)

// Server limits. Request headers of OpenAI clients are a few KB; the limit
// stops a client from making the proxy hold megabytes of headers. There is no
// read or write timeout: uploads and streamed answers can take minutes.
const (
	readHeaderTimeout = 10 * time.Second
	maxHeaderBytes    = 64 << 10
	idleTimeout       = 120 * time.Second
	// cutWait bounds how long Run waits, after the grace period, for the
	// requests it cut to finish writing their log lines; each step of the
	// cut (ending their contexts, closing their connections) gets it once.
	cutWait = 2 * time.Second
)

// Runner serves the handler over HTTP until its context ends, then shuts
// down gracefully.
type Runner struct {
	cfg    core.Config
	logger *slog.Logger
	// plain is the plain server build's runner, which warns when it listens
	// beyond loopback unguarded; a serverless platform's front end stands
	// before the others.
	plain bool
}

var _ start.Runner = (*Runner)(nil)

// LongLived is the start.Platform.NewRunner of the plain server build: an
// HTTP server that the operator runs.
func LongLived(cfg core.Config, logger *slog.Logger, _ core.LookupFunc) (start.Runner, error) {
	return &Runner{cfg: cfg, logger: logger, plain: true}, nil
}

// Serverless is the start.Platform.NewRunner of platforms whose runtime
// forwards HTTP to the process's one port (SCF web functions, FC).
func Serverless(cfg core.Config, logger *slog.Logger, _ core.LookupFunc) (start.Runner, error) {
	return &Runner{cfg: cfg, logger: logger}, nil
}

// LongLived is true for every HTTP server runner: the process lives between
// requests, on a server and in SCF web functions and FC instances alike, so
// it can hold a metrics listener beside the proxy's (OXY_METRICS_ADDR).
func (s *Runner) LongLived() bool { return true }

// Run listens on the configured address and serves h until ctx ends. Then it
// stops accepting, lets in-flight requests and streams finish for up to
// cfg.ShutdownGrace, closes what remains and returns nil.
func (s *Runner) Run(ctx context.Context, h http.Handler) error {
	cfg, logger := s.cfg, s.logger
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s (OXY_HOST, OXY_PORT): %w", addr, err)
	}
	if s.plain && unguarded(cfg, ln.Addr()) {
		logger.Warn("listening beyond loopback with neither proxy keys nor an allow-list: whoever reaches this address can use the proxy",
			"addr", ln.Addr().String(), "hint", "set OXY_AUTH_KEYS (with OXY_UPSTREAM_API_KEY) or OXY_ALLOW_CIDRS, or OXY_HOST=127.0.0.1 to listen on loopback only")
	}
	if cfg.MaxConnections > 0 {
		ln = limitListener(ln, cfg.MaxConnections)
	}
	// Every request's context derives from base; past the grace period it
	// ends with core.ErrShutdown as the cause, so the requests cut then are
	// logged as the proxy's own abort, not as clients that left (499).
	base, cut := context.WithCancelCause(context.Background())
	defer cut(nil)
	// Shutdown waits for idle connections only; a handler that took over its
	// connection (a WebSocket upgrade, proxied until it ends) is tracked here
	// so that it too gets the grace period, and is closed after it.
	var inflight sync.WaitGroup
	upgraded := newHijacked()
	srv := newServer(logger, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		defer inflight.Done()
		h.ServeHTTP(upgraded.track(w, r), r)
	}))
	srv.BaseContext = func(net.Listener) context.Context { return base }
	logger.Info("listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", addr, err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "grace", cfg.ShutdownGrace, "hint", "a second SIGTERM or SIGINT exits at once")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	if err == nil {
		done := make(chan struct{})
		go func() { inflight.Wait(); close(done) }()
		select {
		case <-done:
		case <-sctx.Done():
			err = sctx.Err()
		}
	}
	if err != nil {
		logger.Warn("grace period over, closing remaining connections", "error", err)
		// End the requests first, so that one still waiting for the
		// upstream can answer 503 before its connection closes; then close
		// what remains, and wait for the cut requests to log their lines:
		// the process exits when Run returns.
		cut(core.ErrShutdown)
		ended := waitAtMost(&inflight, cutWait)
		_ = srv.Close()
		upgraded.closeAll()
		if !ended && !waitAtMost(&inflight, cutWait) {
			logger.Warn("requests still running after their connections were closed; their log lines may be missing")
		}
	}
	logger.Info("stopped")
	return nil
}

// unguarded reports whether a server listening on addr can be used by
// anyone who reaches it: the address is not loopback, and neither proxy keys
// (OXY_AUTH_KEYS) nor an allow-list (OXY_ALLOW_CIDRS) limit who may call.
// Serverless HTTP runtimes are left out: there the platform's front end, not
// the operator's network, decides who reaches the port.
func unguarded(cfg core.Config, addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP.IsLoopback() {
		return false
	}
	return len(cfg.AuthKeys) == 0 && len(cfg.AllowCIDRs) == 0
}

// waitAtMost waits for wg for up to d and reports whether it is done.
func waitAtMost(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// newServer returns the HTTP server for h, with limits against slow and
// oversized request headers. "OPTIONS *" goes to h like every request
// (core refuses the asterisk form, 400): net/http's own answer reads up to
// 4 KB of a chunked body and keeps the connection, so a request hidden
// behind a Content-Length the server dropped was read next and went upstream
// with the real key (issue 17).
func newServer(logger *slog.Logger, h http.Handler) *http.Server {
	return &http.Server{
		Handler:                      h,
		DisableGeneralOptionsHandler: true,
		ReadHeaderTimeout:            readHeaderTimeout,
		MaxHeaderBytes:               maxHeaderBytes,
		IdleTimeout:                  idleTimeout,
		ErrorLog:                     slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
}
