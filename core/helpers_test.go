package core

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// testProxy is a proxy in front of an upstream, both on 127.0.0.1.
type testProxy struct {
	URL      string
	Upstream *httptest.Server
	Server   *httptest.Server
	Log      *testkit.LogBuffer
	Config   Config
}

// newTestProxy starts upstream and a proxy targeting it (plus basePath), with
// env applied on top of the defaults.
func newTestProxy(t *testing.T, upstream http.Handler, basePath string, env map[string]string) *testProxy {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	return newTestProxyTo(t, up, up.URL+basePath, env)
}

func newTestProxyTo(t *testing.T, up *httptest.Server, target string, env map[string]string) *testProxy {
	t.Helper()
	e := map[string]string{"OXY_TARGET": target, "OXY_LOG_FORMAT": "json"}
	for k, v := range env {
		e[k] = v
	}
	cfg, err := FromEnv(testkit.Lookup(e), Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.LogBuffer{}
	var transport http.RoundTripper
	if up != nil && up.TLS != nil {
		tr := NewTransport(cfg)
		tr.TLSClientConfig = up.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
		transport = tr
	}
	h := New(cfg, NewLogger(cfg, logs), transport)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testProxy{URL: srv.URL, Upstream: up, Server: srv, Log: logs, Config: cfg}
}

// logLines returns the access-log lines (JSON) logged so far.
func (p *testProxy) logLines() []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(p.Log.String()), "\n") {
		if strings.Contains(l, `"msg":"request"`) {
			out = append(out, l)
		}
	}
	return out
}

// rawUpstream is an upstream that speaks raw bytes: serve is called with each
// accepted connection, which is closed when serve returns. It returns the
// upstream's base URL; the listener closes when the test ends.
func rawUpstream(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serve(c)
			c.Close()
		}
	}()
	return "http://" + ln.Addr().String()
}
