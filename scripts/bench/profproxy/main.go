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
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
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
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("creating the profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("starting the profile: %w", err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if path := os.Getenv("BENCH_MEMPROFILE"); path != "" {
		// Record every allocation (the default samples one per 512 KiB),
		// so that the profile accounts for each stream's few KiB.
		runtime.MemProfileRate = 1
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for range usr1 {
				writeHeapProfile(path)
			}
		}()
	}
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

// writeHeapProfile prints where the process's memory is, then collects
// garbage (the harness has taken its measurement by then) and writes the heap
// profile of what is live.
func writeHeapProfile(path string) {
	printMemStats("before GC")
	runtime.GC()
	printMemStats("after GC")
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "profproxy: error: creating the heap profile: %v\n", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		fmt.Fprintf(os.Stderr, "profproxy: error: writing the heap profile: %v\n", err)
	}
}

func printMemStats(when string) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	start := []metrics.Sample{{Name: "/gc/stack/starting-size:bytes"}}
	metrics.Read(start)
	fmt.Fprintf(os.Stderr, "profproxy: memory %s: goroutines %d, heap in use %d KiB (allocated objects %d KiB), stacks %d KiB, "+
		"goroutines' starting stack %d bytes, heap idle not released %d KiB, runtime other %d KiB, GC cycles %d, next GC at %d KiB\n",
		when, runtime.NumGoroutine(), m.HeapInuse>>10, m.HeapAlloc>>10, m.StackInuse>>10, start[0].Value.Uint64(), (m.HeapIdle-m.HeapReleased)>>10,
		(m.MSpanInuse+m.MCacheInuse+m.BuckHashSys+m.GCSys+m.OtherSys)>>10, m.NumGC, m.NextGC>>10)
}
