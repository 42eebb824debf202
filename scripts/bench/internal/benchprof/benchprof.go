// Package benchprof is what the harness's own builds (scripts/bench/profproxy
// and the floor-* reference programs) share: the HTTP server they serve with
// (Server, Serve), and their profiling: a CPU profile
// to the file named by BENCH_CPUPROFILE, written when the program stops, and a
// heap profile to BENCH_MEMPROFILE, with the runtime's memory figures on
// stderr, each time the program gets SIGUSR1. It is not part of any product
// build.
package benchprof

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
	"syscall"
	"time"
)

// Server returns an http.Server for h with the limits of
// platforms/internal/httpserver.newServer, which scripts cannot import.
func Server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:                      h,
		DisableGeneralOptionsHandler: true,
		ReadHeaderTimeout:            10 * time.Second,
		MaxHeaderBytes:               64 << 10,
		IdleTimeout:                  120 * time.Second,
	}
}

// Serve serves srv on ln until the process gets SIGTERM or SIGINT, then
// closes it.
func Serve(srv *http.Server, ln net.Listener) error {
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

// Start starts the profiles the environment asks for; stop writes the CPU
// profile. With neither variable set it does nothing.
func Start(prog string) (stop func(), err error) {
	stop = func() {}
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return stop, fmt.Errorf("creating the profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return stop, fmt.Errorf("starting the profile: %w", err)
		}
		stop = func() {
			pprof.StopCPUProfile()
			f.Close()
		}
	}
	if path := os.Getenv("BENCH_MEMPROFILE"); path != "" {
		// Record every allocation (the default samples one per 512 KiB),
		// so that the profile accounts for each stream's few KiB.
		runtime.MemProfileRate = 1
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for range usr1 {
				writeHeapProfile(prog, path)
			}
		}()
	}
	return stop, nil
}

// writeHeapProfile prints where the process's memory is, then collects
// garbage (the harness has taken its measurement by then) and writes the heap
// profile of what is live.
func writeHeapProfile(prog, path string) {
	printMemStats(prog, "before GC")
	runtime.GC()
	printMemStats(prog, "after GC")
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: error: creating the heap profile: %v\n", prog, err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		fmt.Fprintf(os.Stderr, "%s: error: writing the heap profile: %v\n", prog, err)
	}
}

func printMemStats(prog, when string) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	start := []metrics.Sample{{Name: "/gc/stack/starting-size:bytes"}}
	metrics.Read(start)
	fmt.Fprintf(os.Stderr, "%s: memory %s: goroutines %d, heap in use %d KiB (allocated objects %d KiB), stacks %d KiB, "+
		"goroutines' starting stack %d bytes, heap idle not released %d KiB, runtime other %d KiB, GC cycles %d, next GC at %d KiB\n",
		prog, when, runtime.NumGoroutine(), m.HeapInuse>>10, m.HeapAlloc>>10, m.StackInuse>>10, start[0].Value.Uint64(), (m.HeapIdle-m.HeapReleased)>>10,
		(m.MSpanInuse+m.MCacheInuse+m.BuckHashSys+m.GCSys+m.OtherSys)>>10, m.NumGC, m.NextGC>>10)
}
