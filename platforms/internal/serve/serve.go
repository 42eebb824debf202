// Package serve runs the proxy as an HTTP server: the plain server build, and
// the serverless platforms whose runtime forwards HTTP to a port (Tencent SCF
// web functions, Aliyun FC custom runtimes). Each platform passes its presets.
package serve

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// Platform is what a platform entrypoint hands to Main.
type Platform struct {
	// Name appears in -h and in the startup log line.
	Name string
	// Defaults are the platform's presets.
	Defaults core.Defaults
	// Wrap, if set, wraps the proxy handler with the platform's own adapter
	// (path prefixes, platform-only requests).
	Wrap func(cfg core.Config, logger *slog.Logger, next http.Handler) http.Handler
	// UsageNote, if set, is printed after the settings by -h.
	UsageNote string
	// Check, if set, refuses settings the platform cannot honour. It runs
	// after the settings are parsed, before anything listens.
	Check func(cfg core.Config) error
}

// Server limits. Request headers of OpenAI clients are a few KB; the limit
// stops a client from making the proxy hold megabytes of headers. There is no
// read or write timeout: uploads and streamed answers can take minutes.
const (
	readHeaderTimeout = 10 * time.Second
	maxHeaderBytes    = 64 << 10
	idleTimeout       = 120 * time.Second
)

// Main runs the platform and exits: 0 after a clean shutdown, 1 on a bad
// setting or a failure to listen, 2 on bad flags.
func Main(p Platform) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, p, os.Args[1:], os.LookupEnv, os.Environ(), os.Stdout, os.Stderr)
	stop()
	Exit(err)
}

// Exit ends the process for err as every platform does: status 0 for nil and
// after -h or -version, 2 for bad flags, 1 for anything else, with the error
// on stderr.
func Exit(err error) {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, new(usageError)):
		fmt.Fprintf(os.Stderr, "chatgpt_reverse_proxy: error: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "chatgpt_reverse_proxy: error: %v\n", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

// Run parses flags and settings, then serves until ctx ends, and then shuts
// down gracefully. It returns flag.ErrHelp after -h or -version.
func Run(ctx context.Context, p Platform, args []string, lookup core.LookupFunc, environ []string, stdout, stderr io.Writer) error {
	cfg, logger, err := Setup(p, args, lookup, environ, stdout, stderr)
	if err != nil {
		return err
	}
	var h http.Handler = core.New(cfg, logger, nil)
	if p.Wrap != nil {
		h = p.Wrap(cfg, logger, h)
	}
	return Serve(ctx, cfg, logger, h)
}

// Setup is the start of every platform: it parses the flags (-h lists every
// setting, -version prints the build) and the settings, and returns the
// configuration and the logger. It returns flag.ErrHelp after -h or -version,
// and an error naming every bad setting before anything listens.
func Setup(p Platform, args []string, lookup core.LookupFunc, environ []string, stdout, stderr io.Writer) (core.Config, *slog.Logger, error) {
	fs := flag.NewFlagSet("chatgpt_reverse_proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() { Usage(stderr, p) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return core.Config{}, nil, err
		}
		return core.Config{}, nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return core.Config{}, nil, usageError{fmt.Errorf("unexpected argument %q; settings come from OXY_* environment variables, see -h", fs.Arg(0))}
	}
	if *showVersion {
		fmt.Fprintln(stdout, core.BuildInfo())
		return core.Config{}, nil, flag.ErrHelp
	}
	cfg, err := core.FromEnv(lookup, core.Options{Defaults: p.Defaults, Environ: environ})
	if err != nil {
		return core.Config{}, nil, err
	}
	if p.Check != nil {
		if err := p.Check(cfg); err != nil {
			return core.Config{}, nil, err
		}
	}
	return cfg, core.NewLogger(cfg, stderr), nil
}

// Serve listens on the configured address and serves h until ctx ends. Then it
// stops accepting, lets in-flight requests and streams finish for up to
// cfg.ShutdownGrace, closes what remains and returns nil.
func Serve(ctx context.Context, cfg core.Config, logger *slog.Logger, h http.Handler) error {
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s (OXY_HOST, OXY_PORT): %w", addr, err)
	}
	// Shutdown waits for idle connections only; a handler that took over its
	// connection (a WebSocket upgrade, proxied until it ends) is tracked here
	// so that it too gets the grace period.
	var inflight sync.WaitGroup
	srv := newServer(logger, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		defer inflight.Done()
		h.ServeHTTP(w, r)
	}))
	logger.Info("listening", "addr", ln.Addr().String(), "target", cfg.Target.String(), "version", core.VersionString())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", addr, err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "grace", cfg.ShutdownGrace)
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
		_ = srv.Close()
	}
	logger.Info("stopped")
	return nil
}

// newServer returns the HTTP server for h, with limits against slow and
// oversized request headers.
func newServer(logger *slog.Logger, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
}

// Usage prints the flags and every setting with its default.
func Usage(w io.Writer, p Platform) {
	fmt.Fprintf(w, "chatgpt_reverse_proxy (%s): a reverse proxy for the OpenAI API and other AI APIs\n\n", p.Name)
	fmt.Fprintf(w, "Usage: chatgpt_reverse_proxy [-version]\n\nSettings (environment variables):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range core.AllSettings(p.Defaults) {
		def := s.Default
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Name, def, s.Usage)
	}
	_ = tw.Flush()
	if p.UsageNote != "" {
		fmt.Fprintf(w, "\n%s\n", p.UsageNote)
	}
}
