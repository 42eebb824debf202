// Package start is the start-up every build shares: flags (-h, -version), the
// settings, the core handler inside the platform's adapter, and the exit
// status. A platform describes itself with a Platform value, and its Runner
// says how requests reach the core: an HTTP server (httpserver), the Lambda
// runtime, the SCF Go runtime's RPC. Each platforms/<name>/main.go is one call:
//
//	func main() { start.Main(aliyunfc.Platform(os.LookupEnv)) }
//
// Work that depends on the settings and applies to every build belongs in
// Run (see Handler for the request path); a sixth platform needs only a
// Platform value and, if no existing runner fits, a Runner.
package start

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// Program is the name the usage text and error messages print.
const Program = "chatgpt_reverse_proxy"

// Platform describes one build.
type Platform struct {
	// Name is the build's folder under platforms/ (aliyunfc, tencentscf,
	// tencentscfevent, awslambda), except for the plain server build, named
	// server, whose folder platforms/chatgpt_reverse_proxy is named for the
	// command `go install` makes. It appears in -h and in the startup log
	// line.
	Name string
	// Defaults are the platform's presets.
	Defaults core.Defaults
	// UsageNote, if set, is printed after the settings by -h.
	UsageNote string
	// Check, if set, refuses settings the platform cannot honour. It runs
	// after the settings are parsed, before anything listens.
	Check func(cfg core.Config) error
	// Wrap, if set, wraps the proxy handler with the platform's own adapter
	// (path prefixes, platform-only requests, the client's address in
	// r.RemoteAddr; see core.ClientAddr). It runs inside the access log:
	// core.AddLogAttrs adds fields to the request's line.
	Wrap func(cfg core.Config, logger *slog.Logger, next http.Handler) http.Handler
	// NewRunner returns how the platform runs the handler. It runs after the
	// settings are parsed and checked; an error (a missing runtime variable)
	// stops start-up before anything listens. lookup reads the environment
	// for what the runtime itself sets.
	NewRunner func(cfg core.Config, logger *slog.Logger, lookup core.LookupFunc) (Runner, error)
}

// Runner is how a platform runs the core: it delivers requests to h.
type Runner interface {
	// Run serves h until ctx ends (SIGINT or SIGTERM), then shuts down
	// within the configured grace and returns nil; it returns an error if
	// it cannot serve at all.
	Run(ctx context.Context, h http.Handler) error
	// LongLived reports whether the process is an HTTP server that lives
	// between requests (the server build, SCF web functions, FC custom
	// runtimes). Event runtimes answer false (Lambda, SCF event functions):
	// the platform freezes the process between invocations and routes no
	// port to it. A metrics listener (OXY_METRICS_ADDR) needs a long-lived
	// runner; Prepare refuses the setting for the others.
	LongLived() bool
}

// Main runs the platform and exits: 0 after a clean shutdown, 1 on a bad
// setting or a failure to listen, 2 on bad flags.
//
// The first SIGINT or SIGTERM starts the graceful shutdown; a second one
// during the grace period exits at once, as operators expect: once the first
// has arrived, the two signals get their default action (terminate) back.
func Main(p Platform) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
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
		fmt.Fprintf(os.Stderr, "%s: error: %v\n", Program, err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "%s: error: %v\n", Program, err)
		os.Exit(1)
	}
}

type usageError struct{ error }

// Run parses flags and settings, builds the handler and the platform's
// runner, and runs it until ctx ends. It returns flag.ErrHelp after -h or
// -version, and an error naming every bad setting before anything listens.
func Run(ctx context.Context, p Platform, args []string, lookup core.LookupFunc, environ []string, stdout, stderr io.Writer) error {
	runner, h, err := Prepare(p, args, lookup, environ, stdout, stderr)
	if err != nil {
		return err
	}
	return runner.Run(ctx, h)
}

// Prepare is Run up to the point where the runner takes over: the settings,
// the platform's runner and the handler it will serve. Tests use it to drive
// a runtime's handler in-process.
func Prepare(p Platform, args []string, lookup core.LookupFunc, environ []string, stdout, stderr io.Writer) (Runner, http.Handler, error) {
	cfg, logger, err := Setup(p, args, lookup, environ, stdout, stderr)
	if err != nil {
		return nil, nil, err
	}
	runner, err := p.NewRunner(cfg, logger, lookup)
	if err != nil {
		return nil, nil, err
	}
	opts, cleanup, err := shared(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	// A metrics listener (OXY_METRICS_ADDR) opens now and serves while the
	// runner runs.
	runner, mopts, err := withMetrics(p, cfg, logger, runner)
	if err != nil && cleanup != nil {
		cleanup()
	}
	if err != nil {
		return nil, nil, err
	}
	h := Handler(p, cfg, logger, append(opts, mopts...)...)
	logger.Info("starting", "platform", p.Name, "target", cfg.Target.String(), "version", core.VersionString())
	if cleanup != nil {
		runner = cleanupRunner{Runner: runner, cleanup: cleanup}
	}
	return runner, h, nil
}

// Handler returns what every build serves: the core proxy for cfg inside the
// platform's adapter, inside the access log (core.Handler.WithAdapter), so
// that adapters can add log fields and their own answers are logged, with
// the decoders every build meters with and opts (the Redis store of budgets
// and key rests, the metrics observer) given to the core. Tests that serve a
// platform in-process use it too.
func Handler(p Platform, cfg core.Config, logger *slog.Logger, opts ...core.Option) http.Handler {
	proxy := core.New(cfg, logger, nil, append(coreOptions(), opts...)...)
	if p.Wrap == nil {
		return proxy
	}
	return proxy.WithAdapter(p.Wrap(cfg, logger, proxy))
}

// Setup parses the flags (-h lists every setting on stdout, -version prints
// the build, -healthcheck asks a running proxy's health route) and the
// settings, runs the platform's Check, and returns the configuration and the
// logger. It returns flag.ErrHelp after -h, -version or a successful
// -healthcheck (exit status 0), and an error naming every bad setting or
// flag. Errors are returned, never printed here: Exit prints them once.
func Setup(p Platform, args []string, lookup core.LookupFunc, environ []string, stdout, stderr io.Writer) (core.Config, *slog.Logger, error) {
	fs := flag.NewFlagSet(Program, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	showVersion := fs.Bool("version", false, "print the version and exit")
	healthcheck := fs.Bool("healthcheck", false, "ask the health route of the proxy running here (OXY_HOST, OXY_PORT, OXY_HEALTH_PATH) and exit 0 if it answers 200, else 1")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			Usage(stdout, p)
			return core.Config{}, nil, err
		}
		return core.Config{}, nil, usageError{fmt.Errorf("%w (see -h)", err)}
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
	if *healthcheck {
		if err := Healthcheck(cfg, stdout); err != nil {
			return core.Config{}, nil, err
		}
		return core.Config{}, nil, flag.ErrHelp
	}
	return cfg, core.NewLogger(cfg, stderr), nil
}

// Usage prints the flags and every setting with its default.
func Usage(w io.Writer, p Platform) {
	fmt.Fprintf(w, "%s (%s): a reverse proxy for the OpenAI API and other AI APIs\n\n", Program, p.Name)
	fmt.Fprintf(w, "Usage: %s [-version | -healthcheck]\n\n", Program)
	fmt.Fprintf(w, "  -version      print the version and exit\n")
	fmt.Fprintf(w, "  -healthcheck  ask the health route of the proxy running here (OXY_HOST, OXY_PORT,\n")
	fmt.Fprintf(w, "                OXY_HEALTH_PATH); exit 0 if it answers 200, else 1 (a container health check)\n")
	fmt.Fprintf(w, "\nSettings (environment variables):\n")
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
