package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// bin is this package's binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(platformtest.RunWithBinary(m, ".", &bin))
}

func send(t *testing.T, method, url string, h http.Header) (*http.Response, string) {
	t.Helper()
	return platformtest.Do(t, method, url, h, `{"model":"gpt-4o-mini"}`)
}

func TestBinary_stripsFCHeadersAndDefaultDomainPrefix(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	up := platformtest.NewUpstream(t)
	p := platformtest.Start(t, bin, "OXY_PORT", "OXY_TARGET="+up.URL)
	h := platformtest.FCHeaders()
	for k, v := range platformtest.ClientHeaders() {
		h[k] = v
	}
	send(t, http.MethodPost, p.URL+"/2016-08-15/proxy/proxy.LATEST/chatgpt-proxy/v1/chat/completions?api-version=1", h)
	last := up.Last(t)
	if last.URI != "/v1/chat/completions?api-version=1" {
		t.Errorf("upstream request URI = %s; want /v1/chat/completions?api-version=1", last.URI)
	}
	platformtest.CheckNoPlatformHeaders(t, last.Header, platformtest.FCHeaders())
}

func TestBinary_streamsSSE(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	up := platformtest.NewUpstream(t)
	p := platformtest.Start(t, bin, "OXY_PORT", "OXY_TARGET="+up.URL)
	platformtest.CheckSSE(t, up, p.URL+"/v1/chat/completions", platformtest.FCHeaders())
	platformtest.CheckNoPlatformHeaders(t, up.Last(t).Header, platformtest.FCHeaders())
}

func TestBinary_eventInvocationNeverForwarded(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	up := platformtest.NewUpstream(t)
	p := platformtest.Start(t, bin, "OXY_PORT", "OXY_TARGET="+up.URL)
	h := platformtest.FCHeaders()
	h.Set("X-Fc-Control-Path", "/invoke")
	res, body := send(t, http.MethodPost, p.URL+"/invoke", h)
	var e struct{ Error struct{ Code string } }
	if res.StatusCode != http.StatusBadRequest || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != "fc_event_invocation_not_supported" {
		t.Errorf("event call answered %d %s; want 400 with code fc_event_invocation_not_supported", res.StatusCode, body)
	}
	if n := len(up.Seen()); n != 0 {
		t.Errorf("upstream received %d requests; want none", n)
	}
}

func TestBinary_listensOnFCPort(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	for _, portVar := range []string{"FC_CUSTOM_LISTEN_PORT", "FC_SERVER_PORT"} {
		t.Run(portVar, func(t *testing.T) {
			up := platformtest.NewUpstream(t)
			// Start fails unless the server listens on the port in portVar.
			p := platformtest.Start(t, bin, portVar, "OXY_TARGET="+up.URL)
			send(t, http.MethodGet, p.URL+"/v1/models", nil)
			if !strings.Contains(p.Log(), "from="+portVar) {
				t.Errorf("log does not say the port came from %s:\n%s", portVar, p.Log())
			}
		})
	}
}

func TestBinary_oxyPortOverridesFCPort(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	up := platformtest.NewUpstream(t)
	// Ports 1 and 2 are never free to a test; the server must use OXY_PORT.
	p := platformtest.Start(t, bin, "OXY_PORT", "OXY_TARGET="+up.URL, "FC_CUSTOM_LISTEN_PORT=1", "FC_SERVER_PORT=2")
	send(t, http.MethodGet, p.URL+"/v1/models", nil)
	if len(up.Seen()) != 1 {
		t.Error("request through OXY_PORT did not reach the upstream")
	}
}

// The real binary refuses OXY_ALLOW_CIDRS on FC and exits 1 before listening.
func TestBinary_refusesAllowCIDRs(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	port := strconv.Itoa(testkit.FreePort(t))
	// Should the check be missing, the server is killed at the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{"OXY_HOST=127.0.0.1", "FC_SERVER_PORT=" + port, "OXY_ALLOW_CIDRS=203.0.113.0/24"}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit = %v; want status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "OXY_ALLOW_CIDRS: not supported on Aliyun FC") || strings.Contains(string(out), "listening") {
		t.Errorf("output %q; want the refusal and no listening line", out)
	}
}

func TestBinary_hostileProbesRefused(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	up := platformtest.NewUpstream(t)
	p := platformtest.Start(t, bin, "OXY_PORT", "OXY_TARGET="+up.URL+"/base")
	// Also behind the FC 2.0 default domain's prefix, which the adapter strips.
	platformtest.CheckHostileProbes(t, up, p.URL, "")
	platformtest.CheckHostileProbes(t, up, p.URL, "/2016-08-15/proxy/svc/fn")
}

// TestBinary_routes: the FC build serves every route after the default
// domain's /2016-08-15/proxy/<service>/<function> prefix, each vendor's stream
// event by event, each upstream with only its own key and none of FC's
// headers (its STS credentials above all), and the log names routes.
func TestBinary_routes(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	v := platformtest.StartVendors(t)
	p := platformtest.Start(t, bin, "OXY_PORT", platformtest.Environ(v.Env())...)
	platformtest.CheckRoutes(t, v, p.URL+"/2016-08-15/proxy/proxy.LATEST/chatgpt-proxy", platformtest.FCHeaders())
	platformtest.CheckRouteLog(t, p.Log)
}
