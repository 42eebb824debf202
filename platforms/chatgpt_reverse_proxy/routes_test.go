package main

import (
	"strings"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

// TestBinary_routes: the server binary (and so the Docker image, which runs
// it) serves every route, each vendor's stream event by event, each upstream
// with only its own key, and its access log names the routes.
func TestBinary_routes(t *testing.T) {
	v := platformtest.StartVendors(t)
	p := startBinary(t, v.Env())
	platformtest.CheckRoutes(t, v, p.base(), nil)
	platformtest.CheckRouteLog(t, p.Stderr.String)
}

// TestBinary_invalidRoutes: bad routes stop the binary before it listens,
// every problem named at once, and a key value is never printed.
func TestBinary_invalidRoutes(t *testing.T) {
	const secret = "sk-never-printed-0123456789"
	p := launch(t, map[string]string{
		"OXY_HOST":                   "127.0.0.1",
		"OXY_ROUTES":                 "anthropc,v1,openai,openai,gw=gateway.example",
		"OXY_UPSTREAM_API_KEY_OPNAI": secret,
	})
	code := p.Wait(t, exitTimeout)
	stderr := p.Stderr.String()
	if code != 1 {
		t.Errorf("exit code %d; want 1:\n%s", code, stderr)
	}
	for _, want := range []string{
		`OXY_ROUTES entry "anthropc": no preset named anthropc, did you mean anthropic?`,
		`OXY_ROUTES entry "v1": the name would hide OXY_TARGET's own API paths`,
		`OXY_ROUTES entry "openai": route openai is listed twice`,
		`OXY_ROUTES entry "gw=gateway.example": missing scheme`,
		"OXY_UPSTREAM_API_KEY_OPNAI: set, but OXY_ROUTES has no route opnai, did you mean OXY_UPSTREAM_API_KEY_OPENAI (route openai)?",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, secret) || strings.Contains(stderr, "listening") {
		t.Errorf("stderr prints the key or the binary listened:\n%s", stderr)
	}
}
