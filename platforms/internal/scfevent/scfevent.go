// Package scfevent runs the proxy as a Tencent Cloud SCF event function: the
// SCF Go runtime calls it over net/rpc (scf-go-lib's protocol) with one API
// gateway or function-URL event per request, and it answers with one
// integrated-response reply. Replies are buffered (6 MB at most, no
// streaming); the SCF web function build is the one that streams.
package scfevent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/scfheaders"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/serve"
)

// Name is the platform's name in -h and in the startup log line.
const Name = "tencent scf event function"

// Defaults are the SCF event function presets: the SCF platform headers
// (X-Scf-*, removed in every build anyway) and the API gateway's own request
// headers never reach the upstream, the same presets as the SCF web function's.
func Defaults() core.Defaults {
	return core.Defaults{
		StripHeaderPrefixes: scfheaders.StripHeaderPrefixes(),
		StripHeaders:        scfheaders.StripHeaders(),
	}
}

// Main runs the event function and exits: 0 after a clean shutdown, 1 on a
// bad setting or a failure to listen, 2 on bad flags.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], os.LookupEnv, os.Environ(), os.Stdout, os.Stderr)
	stop()
	serve.Exit(err)
}

// Run parses flags and settings, listens on OXY_HOST and the port the SCF
// runtime gives in _LAMBDA_SERVER_PORT, and serves until ctx ends. It returns
// flag.ErrHelp after -h or -version.
func Run(ctx context.Context, args []string, lookup core.LookupFunc, environ []string, stdout, stderr io.Writer) error {
	p := serve.Platform{Name: Name, Defaults: Defaults(),
		UsageNote: "The SCF Go runtime sets the listen port in _LAMBDA_SERVER_PORT; OXY_PORT is not used."}
	cfg, logger, err := serve.Setup(p, args, lookup, environ, stdout, stderr)
	if err != nil {
		return err
	}
	port, err := runtimePort(lookup)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(cfg.Host, port)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s (OXY_HOST, _LAMBDA_SERVER_PORT): %w", addr, err)
	}
	logger.Info("listening", "addr", ln.Addr().String(), "target", cfg.Target.String(),
		"platform", Name, "version", core.VersionString())
	return Serve(ctx, ln, NewHandler(core.New(cfg, logger, nil), logger), cfg.ShutdownGrace, logger)
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
