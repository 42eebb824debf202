// Command floor-nethttp is a reference program of the benchmark harness
// (go run ./scripts/bench -floors), not a product build: the least a proxy
// built as ours is (an http.Handler around httputil.ReverseProxy with Rewrite,
// served by net/http) can hold and spend per stream. It is net/http's
// http.Server with the server build's limits, httputil.ReverseProxy{Rewrite:
// SetURL, FlushInterval: -1} and an http.Transport with the settings of
// core.NewTransport, and nothing else: no core handler, no access log, no
// meter, no limits of its own.
//
//	floor-nethttp -listen 127.0.0.1:8080 -upstream 127.0.0.1:9090
//
// BENCH_CPUPROFILE and BENCH_MEMPROFILE ask for profiles (see
// scripts/bench/internal/benchprof).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/scripts/bench/internal/benchprof"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "upstream host:port (plain HTTP)")
	flag.Parse()
	if err := run(*listen, *upstream); err != nil {
		fmt.Fprintf(os.Stderr, "floor-nethttp: error: %v\n", err)
		os.Exit(1)
	}
}

func run(listen, upstream string) error {
	target, err := url.Parse("http://" + upstream)
	if err != nil || upstream == "" {
		return fmt.Errorf("-upstream %q: want host:port", upstream)
	}
	stopProfile, err := benchprof.Start("floor-nethttp")
	if err != nil {
		return err
	}
	defer stopProfile()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	srv := newServer(target)
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

// newServer returns the server: the limits of
// platforms/internal/httpserver.newServer in front of a bare reverse proxy.
func newServer(target *url.URL) *http.Server {
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport:     newTransport(),
		FlushInterval: -1,
	}
	return &http.Server{
		Handler:                      rp,
		DisableGeneralOptionsHandler: true,
		ReadHeaderTimeout:            10 * time.Second,
		MaxHeaderBytes:               64 << 10,
		IdleTimeout:                  120 * time.Second,
	}
}

// newTransport returns the transport of core.NewTransport with the default
// settings (OXY_DIAL_TIMEOUT 10s); TestNewTransport_asCore keeps them equal.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 0
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	t.DisableCompression = true
	t.ReadBufferSize = 1 << 10
	t.WriteBufferSize = 1 << 10
	return t
}
