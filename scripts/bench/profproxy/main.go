// Command profproxy is the proxy's server build with profiles, for
// `go run ./scripts/bench -cpuprofile FILE` and `-memprofile FILE`: the same
// core handler behind an http.Server with the server platform's limits,
// writing the CPU profile named by BENCH_CPUPROFILE when it gets SIGTERM, and
// a heap profile to BENCH_MEMPROFILE (with the runtime's memory figures on
// stderr) each time it gets SIGUSR1. It is not a product build.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"

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
	return benchprof.Serve(benchprof.Server(core.New(cfg, logger, nil)), ln)
}
