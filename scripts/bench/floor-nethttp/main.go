// Command floor-nethttp is a reference program of the benchmark harness
// (go run ./scripts/bench -floors), not a product build: the least a proxy
// built as ours is (an http.Handler around httputil.ReverseProxy with Rewrite,
// served by net/http) can hold and spend per stream. It is net/http's
// http.Server with the server build's limits, httputil.ReverseProxy{Rewrite:
// SetURL, FlushInterval: -1} and the http.Transport of core.NewTransport, and
// nothing else: no core handler, no access log, no
// meter, no limits of its own.
//
//	floor-nethttp -listen 127.0.0.1:8080 -upstream 127.0.0.1:9090
//
// BENCH_CPUPROFILE and BENCH_MEMPROFILE ask for profiles (see
// scripts/bench/internal/benchprof).
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
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
	return benchprof.Serve(newServer(target), ln)
}

// newServer returns the server: the limits of
// platforms/internal/httpserver.newServer in front of a bare reverse proxy
// with core's transport (core.NewTransport with the default OXY_DIAL_TIMEOUT).
func newServer(target *url.URL) *http.Server {
	return benchprof.Server(&httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport:     core.NewTransport(core.Config{DialTimeout: 10 * time.Second}),
		FlushInterval: -1,
	})
}
