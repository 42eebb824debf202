package platformtest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"
)

// Lookup returns a core.LookupFunc over m, so tests never touch the process
// environment.
func Lookup(m map[string]string) core.LookupFunc { return testkit.Lookup(m) }

// Environ returns m in os.Environ's KEY=value form.
func Environ(m map[string]string) []string { return testkit.Environ(m) }

// NewProxy serves platform p in-process (start.Handler: the core handler
// inside p.Wrap, as start.Run builds it) in front of up, with env on top of
// OXY_TARGET.
func NewProxy(t *testing.T, p start.Platform, up *Upstream, env map[string]string) *httptest.Server {
	t.Helper()
	srv, _ := NewProxyLogged(t, p, up, env)
	return srv
}

// NewProxyLogged is NewProxy with the proxy's log (text, at OXY_LOG_LEVEL).
func NewProxyLogged(t *testing.T, p start.Platform, up *Upstream, env map[string]string) (*httptest.Server, *testkit.LogBuffer) {
	t.Helper()
	e := map[string]string{"OXY_TARGET": up.URL}
	for k, v := range env {
		e[k] = v
	}
	cfg, err := core.FromEnv(Lookup(e), core.Options{Defaults: p.Defaults, Environ: Environ(e)})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.LogBuffer{}
	srv := httptest.NewServer(start.Handler(p, cfg, core.NewLogger(cfg, logs)))
	t.Cleanup(srv.Close)
	return srv, logs
}

// Do sends one request with headers h and body, and returns the response with
// its body read.
func Do(t *testing.T, method, url string, h http.Header, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}
