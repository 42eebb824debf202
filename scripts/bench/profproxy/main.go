// Command profproxy is the proxy's server build with profiles, for
// `go run ./scripts/bench -cpuprofile FILE` and `-memprofile FILE`: the same
// core handler behind an http.Server with the server platform's limits,
// writing the CPU profile named by BENCH_CPUPROFILE when it gets SIGTERM, and
// a heap profile to BENCH_MEMPROFILE (with the runtime's memory figures on
// stderr) each time it gets SIGUSR1. It is not a product build.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/scripts/bench/internal/benchprof"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "profproxy: error: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := core.FromEnv(os.LookupEnv, core.Options{Environ: os.Environ()})
	if err != nil {
		return err
	}
	stopProfile, err := benchprof.Start("profproxy")
	if err != nil {
		return err
	}
	defer stopProfile()
	logger := core.NewLogger(cfg, os.Stderr)
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	// The limits of platforms/internal/httpserver.
	srv := &http.Server{
		Handler:           core.New(cfg, logger, nil),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       120 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}
