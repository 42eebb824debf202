package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// The comparison with nginx behind docs/HOSTILE.md: the bytes the probe of
// issue 17 sent, given to the server binary and to nginx (the Debian
// package; the test skips without it), both in front of one upstream at base
// path /base. The regression tests themselves (core/hostile_test.go,
// core/deadlines_test.go) need no nginx. Run with -v to print the table.

// probe is one hostile request and what each proxy is known to answer.
type probe struct {
	name, raw string
	// proxy and nginx are the wanted status of the first response (0: the
	// connection closes without one).
	proxy, nginx int
}

var hostileProbes = []probe{
	{"dot segments", "GET /../admin HTTP/1.1\r\nHost: p\r\n\r\n", 400, 400},
	{"encoded dot segments", "GET /%2e%2e/admin HTTP/1.1\r\nHost: p\r\n\r\n", 400, 400},
	{"dot segments past the base", "GET /v1/../../admin HTTP/1.1\r\nHost: p\r\n\r\n", 400, 400},
	{"dot segments inside", "GET /v1/../models HTTP/1.1\r\nHost: p\r\n\r\n", 200, 200},
	{"Content-Length and chunked", "POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nContent-Length: 45\r\n" +
		"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hidden HTTP/1.1\r\nHost: p\r\n\r\n", 200, 400},
	{"HTTP/1.0 with Transfer-Encoding", "POST /v1/chat/completions HTTP/1.0\r\nHost: p\r\nConnection: keep-alive\r\n" +
		"Transfer-Encoding: chunked\r\n\r\nGET /hidden HTTP/1.1\r\nHost: p\r\n\r\n", 200, 400},
	// Found by the acceptance audit of issue 17: net/http answered
	// "OPTIONS *" itself and kept the connection; the look-alike dot
	// segments and the HTTP/1.0 WebSocket upgrade were forwarded.
	{"OPTIONS * with Content-Length and chunked", "OPTIONS * HTTP/1.1\r\nHost: p\r\nContent-Length: 38\r\n" +
		"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hidden HTTP/1.1\r\nHost: p\r\n\r\n", 400, 400},
	{"overlong UTF-8 dot segments", "GET /%c0%ae%c0%ae/admin HTTP/1.1\r\nHost: p\r\n\r\n", 400, 200},
	{"fullwidth dot segments", "GET /%ef%bc%8e%ef%bc%8e/admin HTTP/1.1\r\nHost: p\r\n\r\n", 400, 200},
	{"dot segment ended by %3f", "GET /..%3f/admin HTTP/1.1\r\nHost: p\r\n\r\n", 400, 200},
	{"WebSocket in HTTP/1.0", "GET /v1/realtime HTTP/1.0\r\nHost: p\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 400, 200},
	{"malformed chunked body", "POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400, 400},
	{"Upgrade: h2c", "GET /v1/models HTTP/1.1\r\nHost: p\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
		"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", 400, 200},
	{"Upgrade: foo/1", "GET /v1/models HTTP/1.1\r\nHost: p\r\nConnection: Upgrade\r\nUpgrade: foo/1\r\n\r\n", 400, 200},
	{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 405, 400},
	{"TRACE", "TRACE /v1/models HTTP/1.1\r\nHost: p\r\n\r\n", 405, 405},
	{"CONNECT", "CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n", 405, 400},
	{"two Content-Lengths", "POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", 400, 400},
	{"bare CR in a header", "GET /v1/x HTTP/1.1\r\nHost: p\r\nX-A: 1\rX-B: 2\r\n\r\n", 400, 400},
	{"NUL in a header", "GET /v1/x HTTP/1.1\r\nHost: p\r\nX-A: a\x00b\r\n\r\n", 400, 400},
	{"absolute form, other host", "GET http://evil.example/v1/models HTTP/1.1\r\nHost: evil.example\r\n\r\n", 200, 200},
	// nginx, not buffering the body (as a streaming proxy must not), closes
	// the connection at client_body_timeout without an answer.
	{"stalled body (limit 1 s)", "POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nContent-Length: 100\r\n\r\n{\"model\":", 408, 0},
}

const nginxCompareConf = `daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  client_body_timeout 1s;
  server {
    listen 127.0.0.1:%[2]d;
    location / {
      proxy_pass http://%[3]s/base/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
`

// startNginx runs nginx in front of upstream (host:port) and returns its port.
func startNginx(t *testing.T, upstream string) int {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
			t.Skip("nginx not installed (apt-get install nginx-light); the comparison is in docs/HOSTILE.md")
		}
		bin = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	var port int
	testkit.WithFreePort(t, func(p int) error {
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxCompareConf, dir, p, upstream)), 0o644); err != nil {
			t.Fatal(err)
		}
		proc := testkit.Launch(t, bin, os.Environ(), "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf)
		if !testkit.WaitUntil(startTimeout, func() bool { return proc.Exited() || !refusesConnections(p) }) || proc.Exited() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return fmt.Errorf("nginx did not start: %s%s", log, proc.Stderr)
		}
		port = p
		return nil
	})
	return port
}

// answer sends raw to addr and returns the status of the first response (0
// if none) and the number of responses before the connection closed or
// stayed silent for wait.
func answer(t *testing.T, addr, raw string, wait time.Duration) (status, responses int) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, raw)
	conn.SetReadDeadline(time.Now().Add(wait))
	b, _ := io.ReadAll(conn)
	out := string(b)
	for _, line := range strings.Split(out, "\r\n") {
		if strings.HasPrefix(line, "HTTP/1.") && len(line) >= 12 {
			if responses == 0 {
				status, _ = strconv.Atoi(line[9:12])
			}
			responses++
		}
	}
	return status, responses
}

func TestNginx_sameHostileProbes(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var hidden []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if !strings.HasPrefix(r.URL.Path, "/base/") || strings.Contains(r.URL.Path, "hidden") {
			mu.Lock()
			hidden = append(hidden, r.RequestURI)
			mu.Unlock()
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(up.Close)
	ngx := startNginx(t, strings.TrimPrefix(up.URL, "http://"))
	p := startBinary(t, map[string]string{"OXY_TARGET": up.URL + "/base", "OXY_CLIENT_BODY_TIMEOUT": "1s"})

	table := []string{"| Probe | proxy | nginx 1.22 |", "|---|---|---|"}
	for _, pr := range hostileProbes {
		wait := time.Second
		if strings.HasPrefix(pr.name, "stalled") {
			wait = 15 * time.Second
		}
		start := time.Now()
		ps, pn := answer(t, "127.0.0.1:"+strconv.Itoa(p.port), pr.raw, wait)
		pd := time.Since(start)
		start = time.Now()
		ns, _ := answer(t, "127.0.0.1:"+strconv.Itoa(ngx), pr.raw, wait)
		t.Logf("%s: proxy %d after %v, nginx %d after %v", pr.name, ps, pd.Round(time.Millisecond), ns, time.Since(start).Round(time.Millisecond))
		if ps != pr.proxy || pn > 1 {
			t.Errorf("%s: proxy answered %d (%d responses); want %d, once", pr.name, ps, pn, pr.proxy)
		}
		if ns != pr.nginx {
			t.Errorf("%s: nginx answered %d; docs/HOSTILE.md says %d", pr.name, ns, pr.nginx)
		}
		table = append(table, fmt.Sprintf("| %s | %d | %d |", pr.name, ps, ns))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hidden) > 0 {
		t.Errorf("the upstream was sent %q, outside the base path or smuggled", hidden)
	}
	t.Log("\n" + strings.Join(table, "\n"))
}
