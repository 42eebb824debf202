package main

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// TestBinary_unknownFlagPrintedOnce: a bad flag exits 2 with its error on
// stderr exactly once, and no usage text (the flag package alone prints the
// error and the usage, and the program printed the error again).
func TestBinary_unknownFlagPrintedOnce(t *testing.T) {
	p := runBinary(t, nil, "-bogus")
	if code := p.Cmd.ProcessState.ExitCode(); code != 2 {
		t.Errorf("-bogus exited with %d; want 2", code)
	}
	stderr := p.Stderr.String()
	if n := strings.Count(stderr, "flag provided but not defined: -bogus"); n != 1 {
		t.Errorf("stderr holds the error %d times; want once:\n%s", n, stderr)
	}
	if !strings.HasPrefix(stderr, "chatgpt_reverse_proxy: error: ") || !strings.Contains(stderr, "see -h") {
		t.Errorf("stderr = %q; want one chatgpt_reverse_proxy: error: line pointing to -h", stderr)
	}
	if strings.Contains(stderr, "OXY_TARGET") || p.Stdout.String() != "" {
		t.Errorf("a bad flag printed the usage; stdout %q, stderr %q", p.Stdout.String(), stderr)
	}
}

// TestBinary_healthcheck: -healthcheck asks the health route of a running
// proxy with the same settings and exits 0; 1 when nothing answers or the
// route is off. It is the image's HEALTHCHECK (build/Dockerfile).
func TestBinary_healthcheck(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(up.Close)
	p := startBinary(t, map[string]string{"OXY_TARGET": up.URL})
	port := strconv.Itoa(p.port)

	for _, host := range []string{"127.0.0.1", "0.0.0.0"} { // 0.0.0.0 is asked on 127.0.0.1
		c := runBinary(t, map[string]string{"OXY_HOST": host, "OXY_PORT": port}, "-healthcheck")
		if code := c.Cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(c.Stdout.String(), `"status":"ok"`) {
			t.Errorf("OXY_HOST=%s -healthcheck: exit %d, stdout %q, stderr %q; want 0 and the route's answer",
				host, code, c.Stdout.String(), c.Stderr.String())
		}
	}

	free := strconv.Itoa(testkit.FreePort(t))
	c := runBinary(t, map[string]string{"OXY_HOST": "127.0.0.1", "OXY_PORT": free}, "-healthcheck")
	if code := c.Cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(c.Stderr.String(), "-healthcheck") {
		t.Errorf("-healthcheck with nothing listening: exit %d, stderr %q; want 1 and the reason", code, c.Stderr.String())
	}
	c = runBinary(t, map[string]string{"OXY_HOST": "127.0.0.1", "OXY_PORT": port, "OXY_HEALTH_PATH": ""}, "-healthcheck")
	if code := c.Cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(c.Stderr.String(), "OXY_HEALTH_PATH") {
		t.Errorf("-healthcheck with the route off: exit %d, stderr %q; want 1 naming OXY_HEALTH_PATH", code, c.Stderr.String())
	}
}

const unguardedWarning = "neither proxy keys nor an allow-list"

// TestBinary_warnsWhenListeningUnguarded: listening on every address with
// neither proxy keys nor an allow-list logs a warning; an allow-list, or
// loopback, does not.
func TestBinary_warnsWhenListeningUnguarded(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(up.Close)
	start := func(env map[string]string) string {
		t.Helper()
		env["OXY_TARGET"] = up.URL
		p, _ := testkit.StartServer(t, serverBinary(t), "OXY_PORT", testkit.Environ(env), func(p *testkit.Process, _ int) bool {
			return p.Stderr.Contains(listeningLine...)
		})
		p.Stop(t)
		return p.Stderr.String()
	}
	if log := start(map[string]string{"OXY_HOST": "0.0.0.0"}); !strings.Contains(log, unguardedWarning) || !strings.Contains(log, "level=WARN") {
		t.Errorf("OXY_HOST=0.0.0.0 with no keys or allow-list: no warning in\n%s", log)
	}
	if log := start(map[string]string{"OXY_HOST": "0.0.0.0", "OXY_ALLOW_CIDRS": "127.0.0.1/32"}); strings.Contains(log, unguardedWarning) {
		t.Errorf("with OXY_ALLOW_CIDRS the proxy still warns:\n%s", log)
	}
	if log := start(map[string]string{"OXY_HOST": "127.0.0.1"}); strings.Contains(log, unguardedWarning) {
		t.Errorf("on loopback the proxy still warns:\n%s", log)
	}
}

// isrgRootX1 is Let's Encrypt's root (public data), one of Mozilla's roots.
const isrgRootX1 = `-----BEGIN CERTIFICATE-----
MIIFazCCA1OgAwIBAgIRAIIQz7DSQONZRGPgu2OCiwAwDQYJKoZIhvcNAQELBQAw
TzELMAkGA1UEBhMCVVMxKTAnBgNVBAoTIEludGVybmV0IFNlY3VyaXR5IFJlc2Vh
cmNoIEdyb3VwMRUwEwYDVQQDEwxJU1JHIFJvb3QgWDEwHhcNMTUwNjA0MTEwNDM4
WhcNMzUwNjA0MTEwNDM4WjBPMQswCQYDVQQGEwJVUzEpMCcGA1UEChMgSW50ZXJu
ZXQgU2VjdXJpdHkgUmVzZWFyY2ggR3JvdXAxFTATBgNVBAMTDElTUkcgUm9vdCBY
MTCCAiIwDQYJKoZIhvcNAQEBBQADggIPADCCAgoCggIBAK3oJHP0FDfzm54rVygc
h77ct984kIxuPOZXoHj3dcKi/vVqbvYATyjb3miGbESTtrFj/RQSa78f0uoxmyF+
0TM8ukj13Xnfs7j/EvEhmkvBioZxaUpmZmyPfjxwv60pIgbz5MDmgK7iS4+3mX6U
A5/TR5d8mUgjU+g4rk8Kb4Mu0UlXjIB0ttov0DiNewNwIRt18jA8+o+u3dpjq+sW
T8KOEUt+zwvo/7V3LvSye0rgTBIlDHCNAymg4VMk7BPZ7hm/ELNKjD+Jo2FR3qyH
B5T0Y3HsLuJvW5iB4YlcNHlsdu87kGJ55tukmi8mxdAQ4Q7e2RCOFvu396j3x+UC
B5iPNgiV5+I3lg02dZ77DnKxHZu8A/lJBdiB3QW0KtZB6awBdpUKD9jf1b0SHzUv
KBds0pjBqAlkd25HN7rOrFleaJ1/ctaJxQZBKT5ZPt0m9STJEadao0xAH0ahmbWn
OlFuhjuefXKnEgV4We0+UXgVCwOPjdAvBbI+e0ocS3MFEvzG6uBQE3xDk3SzynTn
jh8BCNAw1FtxNrQHusEwMFxIt4I7mKZ9YIqioymCzLq9gwQbooMDQaHWBfEbwrbw
qHyGO0aoSCqI3Haadr8faqU9GY/rOPNk3sgrDQoo//fb4hVC1CLQJ13hef4Y53CI
rU7m2Ys6xt0nUW7/vGT1M0NPAgMBAAGjQjBAMA4GA1UdDwEB/wQEAwIBBjAPBgNV
HRMBAf8EBTADAQH/MB0GA1UdDgQWBBR5tFnme7bl5AFzgAiIyBpY9umbbjANBgkq
hkiG9w0BAQsFAAOCAgEAVR9YqbyyqFDQDLHYGmkgJykIrGF1XIpu+ILlaS/V9lZL
ubhzEFnTIZd+50xx+7LSYK05qAvqFyFWhfFQDlnrzuBZ6brJFe+GnY+EgPbk6ZGQ
3BebYhtF8GaV0nxvwuo77x/Py9auJ/GpsMiu/X1+mvoiBOv/2X/qkSsisRcOj/KK
NFtY2PwByVS5uCbMiogziUwthDyC3+6WVwW6LLv3xLfHTjuCvjHIInNzktHCgKQ5
ORAzI4JMPJ+GslWYHb4phowim57iaztXOoJwTdwJx4nLCgdNbOhdjsnvzqvHu7Ur
TkXWStAmzOVyyghqpZXjFaH3pO3JLF+l+/+sKAIuvtd7u+Nxe5AW0wdeRlN8NwdC
jNPElpzVmbUq4JUagEiuTDkHzsxHpFKVK7q4+63SM1N95R1NbdWhscdCb+ZAJzVc
oyi3B43njTOQ5yOf+1CceWxG1bQVs5ZufpsMljq4Ui0/1lvh+wjChP4kqKOJ2qxq
4RgqsahDYVvTH9w7jXbyLeiNdd8XM2w9U/t7y0Ff/9yi0GE44Za4rF2LN9d11TPA
mRGunUHBcnWEvgJBQl9nJEiU0Zsnvgc/ubhPgXRR4Xq37Z0j4r7g1SgEEzwxA57d
emyPxgcYxn/eR44/KJ4EBs+lVDR3veyJm+kXQ99b21/+jh5Xos1AnX5iItreGCc=
-----END CERTIFICATE-----
`

// TestCARoots_compiledIn: with no CA roots on the system (as in the image,
// FROM scratch), the binary still has Mozilla's (x509roots/fallback). The
// test binary links what main links; a child with SSL_CERT_FILE and
// SSL_CERT_DIR pointing nowhere checks that a Mozilla root is trusted.
func TestCARoots_compiledIn(t *testing.T) {
	if os.Getenv("CA_ROOTS_CHILD") == "1" {
		block, _ := pem.Decode([]byte(isrgRootX1))
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			t.Fatalf("no system pool: %v", err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
			t.Fatalf("ISRG Root X1 is not trusted without system roots: %v", err)
		}
		return
	}
	empty := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCARoots_compiledIn$", "-test.count=1")
	cmd.Env = []string{"CA_ROOTS_CHILD=1", "SSL_CERT_FILE=" + empty + "/none.pem", "SSL_CERT_DIR=" + empty}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("child without system roots: %v\n%s", err, out)
	}
}

// TestGoInstall_commandName: `go install` of this package's module path makes
// a command named chatgpt_reverse_proxy (README's Install section), not
// "server".
func TestGoInstall_commandName(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command; skipped with -short")
	}
	gobin := t.TempDir()
	cmd := exec.Command("go", "install", "github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/chatgpt_reverse_proxy")
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install: %v\n%s", err, out)
	}
	out, err := exec.Command(gobin+"/chatgpt_reverse_proxy", "-version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "chatgpt_reverse_proxy ") {
		t.Errorf("installed chatgpt_reverse_proxy -version = %q, %v", out, err)
	}
}
