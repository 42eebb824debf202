// Package tencentscfevent runs the proxy as a Tencent Cloud SCF event function: the
// SCF Go runtime calls it over net/rpc (scf-go-lib's protocol) with one API
// gateway or function-URL event per request, and it answers with one
// integrated-response reply. Replies are buffered (6 MB at most, no
// streaming); the SCF web function build is the one that streams.
package tencentscfevent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/scfheaders"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"
)

// Platform returns the SCF event function build: its presets and its
// runner, the SCF Go runtime's net/rpc service.
func Platform() start.Platform {
	return start.Platform{
		Name:      "tencentscfevent",
		Defaults:  Defaults(),
		UsageNote: "The SCF Go runtime sets the listen port in _LAMBDA_SERVER_PORT; OXY_PORT is not used.",
		NewRunner: NewRunner,
	}
}

// Defaults are the SCF event function presets: the SCF platform headers
// (X-Scf-*, removed in every build anyway) and the API gateway's own request
// headers never reach the upstream, the same presets as the SCF web function's.
func Defaults() core.Defaults {
	return core.Defaults{
		StripHeaderPrefixes: scfheaders.StripHeaderPrefixes(),
		StripHeaders:        scfheaders.StripHeaders(),
	}
}

// Runner answers the SCF Go runtime's RPC calls on OXY_HOST and the port the
// runtime gives in _LAMBDA_SERVER_PORT.
type Runner struct {
	addr   string
	grace  time.Duration
	logger *slog.Logger
}

var _ start.Runner = (*Runner)(nil)

// NewRunner is the Platform's start.Platform.NewRunner: it refuses to start
// outside the SCF Go runtime (no _LAMBDA_SERVER_PORT).
func NewRunner(cfg core.Config, logger *slog.Logger, lookup core.LookupFunc) (start.Runner, error) {
	port, err := runtimePort(lookup)
	if err != nil {
		return nil, err
	}
	return &Runner{addr: net.JoinHostPort(cfg.Host, port), grace: cfg.ShutdownGrace, logger: logger}, nil
}

// LongLived is false: SCF freezes the process between invocations.
func (r *Runner) LongLived() bool { return false }

// Run listens and serves events to h until ctx ends, then shuts down within
// the grace period.
func (r *Runner) Run(ctx context.Context, h http.Handler) error {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		return fmt.Errorf("listening on %s (OXY_HOST, _LAMBDA_SERVER_PORT): %w", r.addr, err)
	}
	r.logger.Info("listening", "addr", ln.Addr().String())
	return Serve(ctx, ln, NewHandler(h, r.logger), r.grace, r.logger)
}

// errNoPort reports that the binary was started outside the SCF Go runtime.
var errNoPort = errors.New("_LAMBDA_SERVER_PORT is not set: this build runs as a Tencent SCF event function " +
	"(Go runtime), which sets it; use the server build elsewhere")

// runtimePort returns the port the SCF Go runtime calls, as scf-go-lib reads it.
func runtimePort(lookup core.LookupFunc) (string, error) {
	v, ok := lookup("_LAMBDA_SERVER_PORT")
	if !ok || v == "" {
		return "", errNoPort
	}
	if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("_LAMBDA_SERVER_PORT=%q: must be a port number 1-65535", v)
	}
	return v, nil
}
