//go:build unix

package main

// End-to-end tests of the built bootstrap binary: buffered mode under the
// real AWS Lambda Runtime Interface Emulator, and response streaming under a
// fake Runtime API (e2e_streaming_test.go). The emulator is
// built from the Go module proxy on first use.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// riePackage is the pinned emulator (see PLATFORMS.md).
const riePackage = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d"

var toolDir = sync.OnceValues(func() (string, error) { return os.MkdirTemp("", "awslambda-e2e-") })

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := toolDir(); err == nil {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

// The bootstrap as the README builds it (for this machine's OS and arch).
var buildBootstrap = sync.OnceValues(func() (string, error) {
	dir, err := toolDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "bootstrap")
	return out, testkit.GoBuild(out, ".", "-tags", "lambda.norpc")
})

var buildRIE = sync.OnceValues(func() (string, error) {
	dir, err := toolDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "aws-lambda-rie"), testkit.Go([]string{"GOBIN=" + dir, "CGO_ENABLED=0"}, "install", riePackage)
})

func tool(t *testing.T, build func() (string, error)) string {
	t.Helper()
	path, err := build()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// freeAddr returns a 127.0.0.1 address that was free a moment ago.
func freeAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t)) }

// launch runs a command with only the given environment (no OXY_* from the
// developer's shell) until the end of the test.
func launch(t *testing.T, env []string, name string, args ...string) *testkit.Process {
	t.Helper()
	return testkit.Launch(t, name, append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...), args...)
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	return testkit.ReadFile(t, "..", "internal", "awslambda", "testdata", name)
}

// startRIE runs the bootstrap under the emulator and returns its invoke URL.
func startRIE(t *testing.T, env ...string) string {
	t.Helper()
	url, _ := startRIEProcess(t, env...)
	return url
}

// startRIEProcess is startRIE, also returning the emulator's process, whose
// stderr holds the function's log.
func startRIEProcess(t *testing.T, env ...string) (string, *testkit.Process) {
	t.Helper()
	rie, bootstrap := tool(t, buildRIE), tool(t, buildBootstrap)
	addr, apiAddr := freeAddr(t), freeAddr(t)
	p := launch(t, env, rie, "--runtime-interface-emulator-address", addr, "--runtime-api-address", apiAddr, bootstrap)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("emulator not listening on %s", addr)
		}
	}
	return "http://" + addr + "/2015-03-31/functions/function/invocations", p
}

// urlResponse is a buffered function URL reply.
type urlResponse struct {
	StatusCode      int               `json:"statusCode"`
	Headers         map[string]string `json:"headers"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
	Cookies         []string          `json:"cookies"`
}

func invokeRIE(t *testing.T, url string, event []byte) urlResponse {
	t.Helper()
	res, err := http.Post(url, "application/json", bytes.NewReader(event))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	var r urlResponse
	if err := json.Unmarshal(out, &r); err != nil || r.StatusCode == 0 {
		t.Fatalf("emulator answered %d %q; want a function URL reply", res.StatusCode, out)
	}
	return r
}

// errorCode returns the code of an OpenAI-shaped error body.
func errorCode(body string) string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	return e.Error.Code
}

func TestE2E_bufferedUnderEmulator(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got *http.Request
	var gotBody []byte
	var reply http.HandlerFunc
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, gotBody = r, body
		h := reply
		mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(up.Close)
	setReply := func(h http.HandlerFunc) { mu.Lock(); reply = h; mu.Unlock() }
	url := startRIE(t, "OXY_TARGET="+up.URL)

	t.Run("request and reply", func(t *testing.T) {
		setReply(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Add("Set-Cookie", "__cf_bm=one; Path=/")
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"id":"chatcmpl-1"}`)
		})
		res := invokeRIE(t, url, fixture(t, "chat-completions.json"))
		if res.StatusCode != 201 || res.Body != `{"id":"chatcmpl-1"}` || len(res.Cookies) != 1 {
			t.Errorf("reply = %+v; want 201, the upstream body and its cookie", res)
		}
		mu.Lock()
		defer mu.Unlock()
		if got.Method != "POST" || got.RequestURI != "/v1/chat/completions?api-version=2024-06-01&x=a%2Fb;c" {
			t.Errorf("upstream got %s %s", got.Method, got.RequestURI)
		}
		if got.Header.Get("Authorization") != "Bearer sk-test-key" || string(gotBody) != `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}` {
			t.Errorf("upstream got Authorization %q, body %q", got.Header.Get("Authorization"), gotBody)
		}
		for name := range got.Header {
			l := strings.ToLower(name)
			if strings.HasPrefix(l, "x-amzn-") || strings.HasPrefix(l, "x-forwarded-") || strings.HasPrefix(l, "x-golambdaproxy-") || l == "cookie" {
				t.Errorf("upstream got %s", name)
			}
		}
	})

	t.Run("binary body", func(t *testing.T) {
		bin := []byte("\x00\xff\xfe binary \x80")
		setReply(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(bin) })
		res := invokeRIE(t, url, fixture(t, "binary-body-base64.json"))
		body, _ := base64.StdEncoding.DecodeString(res.Body)
		if !res.IsBase64Encoded || !bytes.Equal(body, bin) {
			t.Errorf("reply = %+v; want the binary body base64-encoded", res)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(gotBody) != 266 || gotBody[255] != 0xff {
			t.Errorf("upstream body %q; want the decoded 266 bytes", gotBody)
		}
	})

	// The emulator, like Lambda, refuses replies over 6 MB; the client must
	// get a JSON error that says what to do, not a platform failure.
	t.Run("reply over 6 MB", func(t *testing.T) {
		setReply(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write(bytes.Repeat([]byte("a"), 7<<20))
		})
		res := invokeRIE(t, url, fixture(t, "chat-completions.json"))
		if res.StatusCode != 502 || errorCode(res.Body) != "response_too_large" {
			t.Errorf("reply = %d %q; want 502 response_too_large", res.StatusCode, res.Body)
		}
	})
}

// With a 5 s function timeout and an upstream that never answers, the proxy
// answers 500 ms before the emulator would stop it: the client gets a 504
// JSON error from the function, not the platform's timeout.
func TestE2E_bufferedDeadlineUnderEmulator(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(done) })
	url := startRIE(t, "OXY_TARGET="+up.URL, "AWS_LAMBDA_FUNCTION_TIMEOUT=5")
	res := invokeRIE(t, url, fixture(t, "chat-completions.json"))
	if res.StatusCode != 504 || errorCode(res.Body) != "upstream_timeout" {
		t.Errorf("reply = %d %q; want 504 upstream_timeout", res.StatusCode, res.Body)
	}
}

// A bad setting stops the bootstrap before it asks for an invocation, with a
// message naming the setting, so Lambda reports an init error.
func TestE2E_badSettingStopsStartup(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(tool(t, buildBootstrap))
	cmd.Env = []string{"OXY_LAMBDA_INVOKE_MODE=stream", "AWS_LAMBDA_RUNTIME_API=127.0.0.1:1"}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("exit: %v; want status 1", err)
	}
	if want := `chatgpt_reverse_proxy: error: invalid configuration:
  OXY_LAMBDA_INVOKE_MODE="stream": must be buffered or response_stream`; !strings.HasPrefix(string(out), want) {
		t.Errorf("output %q; want it to start with %q", out, want)
	}
}
