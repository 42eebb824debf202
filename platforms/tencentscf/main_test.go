package main

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

// bin is this package's binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(platformtest.RunWithBinary(m, ".", &bin))
}

func send(t *testing.T, method, url string, h http.Header) *http.Response {
	t.Helper()
	res, _ := platformtest.Do(t, method, url, h, `{"model":"gpt-4o-mini"}`)
	return res
}

func TestBinary_stripsSCFHeaders(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	up := platformtest.NewUpstream(t)
	p := platformtest.Start(t, bin, "OXY_PORT", "OXY_TARGET="+up.URL, "OXY_HOP_HEADER_PREFIX=X-Custom-")
	h := platformtest.SCFHeaders()
	for k, v := range platformtest.ClientHeaders() {
		h[k] = v
	}
	h.Set("X-Custom-Tag", "user-listed")
	send(t, http.MethodPost, p.URL+"/v1/chat/completions?api-version=2024-10-21", h)
	last := up.Last(t)
	if last.URI != "/v1/chat/completions?api-version=2024-10-21" {
		t.Errorf("upstream request URI = %s; want /v1/chat/completions?api-version=2024-10-21", last.URI)
	}
	platformtest.CheckNoPlatformHeaders(t, last.Header, platformtest.SCFHeaders())
	if v := last.Header.Get("X-Custom-Tag"); v != "" {
		t.Errorf("upstream received X-Custom-Tag %q; want OXY_HOP_HEADER_PREFIX honoured next to the preset", v)
	}
}

func TestBinary_streamsSSE(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	up := platformtest.NewUpstream(t)
	p := platformtest.Start(t, bin, "OXY_PORT", "OXY_TARGET="+up.URL)
	platformtest.CheckSSE(t, up, p.URL+"/v1/chat/completions", platformtest.SCFHeaders())
	platformtest.CheckNoPlatformHeaders(t, up.Last(t).Header, platformtest.SCFHeaders())
}

func TestBinary_stripPathPrefix(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	up := platformtest.NewUpstream(t)
	p := platformtest.Start(t, bin, "OXY_PORT", "OXY_TARGET="+up.URL, "OXY_STRIP_PATH_PREFIX=/release")
	send(t, http.MethodGet, p.URL+"/release/v1/models", nil)
	send(t, http.MethodGet, p.URL+"/v1/models?limit=1", nil)
	seen := up.Seen()
	if len(seen) != 2 || seen[0].URI != "/v1/models" || seen[1].URI != "/v1/models?limit=1" {
		t.Errorf("upstream saw %+v; want /v1/models then /v1/models?limit=1", seen)
	}
}

func TestBinary_dropsSetCookie(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	up := platformtest.NewUpstream(t)
	up.ExtraResponseHeaders = http.Header{"Set-Cookie": {"__cf_bm=" + strings.Repeat("c", 200) + "; path=/; domain=.api.openai.com"}}
	p := platformtest.Start(t, bin, "OXY_PORT", "OXY_TARGET="+up.URL)
	res := send(t, http.MethodGet, p.URL+"/v1/models", nil)
	if v := res.Header.Values("Set-Cookie"); len(v) > 0 {
		t.Errorf("client received Set-Cookie %q; want it dropped on SCF", v)
	}
	if res.Header.Get("X-Request-Id") != "req_test" {
		t.Errorf("X-Request-Id = %q; want req_test kept", res.Header.Get("X-Request-Id"))
	}
}

func TestBinary_helpShowsPresets(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	cmd := exec.Command(bin, "-h")
	cmd.Env = []string{}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("-h: %v\n%s", err, out)
	}
	for _, want := range []string{"(tencentscf)", "OXY_PORT", "9000", "OXY_STRIP_PATH_PREFIX"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("-h output lacks %q:\n%s", want, out)
		}
	}
	cmd = exec.Command(bin, "-version")
	cmd.Env = []string{}
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), platformtest.TestVersion) {
		t.Errorf("-version = %q, %v; want it to report %s", out, err, platformtest.TestVersion)
	}
}

// The real binary judges OXY_ALLOW_CIDRS by SCF's X-Scf-Remote-Addr: a
// client's X-Forwarded-For does not let it in, and without the SCF header the
// request is refused even though the socket peer (127.0.0.1) is listed.
func TestBinary_allowListUsesSCFRemoteAddr(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	up := platformtest.NewUpstream(t)
	p := platformtest.Start(t, bin, "OXY_PORT", "OXY_TARGET="+up.URL, "OXY_ALLOW_CIDRS=203.0.113.0/24,127.0.0.1")
	tests := []struct {
		header http.Header
		status int
	}{
		{http.Header{"X-Scf-Remote-Addr": {"203.0.113.7"}}, http.StatusOK},
		{http.Header{"X-Scf-Remote-Addr": {"198.51.100.1"}, "X-Forwarded-For": {"203.0.113.7"}}, http.StatusForbidden},
		{http.Header{"X-Forwarded-For": {"203.0.113.7"}}, http.StatusForbidden},
	}
	for _, tt := range tests {
		if res := send(t, http.MethodGet, p.URL+"/v1/models", tt.header); res.StatusCode != tt.status {
			t.Errorf("headers %v: status = %d; want %d", tt.header, res.StatusCode, tt.status)
		}
	}
	if n := len(up.Seen()); n != 1 {
		t.Errorf("upstream got %d requests; want only the allowed one", n)
	}
}

func TestBinary_hostileProbesRefused(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	up := platformtest.NewUpstream(t)
	p := platformtest.Start(t, bin, "OXY_PORT", "OXY_TARGET="+up.URL+"/base")
	platformtest.CheckHostileProbes(t, up, p.URL, "")
}

// TestBinary_routes: the web function serves every route after
// OXY_STRIP_PATH_PREFIX, each vendor's stream event by event, each upstream
// with only its own key and none of SCF's headers, and the log names routes.
func TestBinary_routes(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	v := platformtest.StartVendors(t)
	p := platformtest.Start(t, bin, "OXY_PORT", append(platformtest.Environ(v.Env()), "OXY_STRIP_PATH_PREFIX=/release")...)
	platformtest.CheckRoutes(t, v, p.URL+"/release", platformtest.SCFHeaders())
	platformtest.CheckRouteLog(t, p.Log)
}
