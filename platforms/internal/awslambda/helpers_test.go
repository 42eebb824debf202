package awslambda

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"
)

// fixture returns testdata/name, a function URL event (payload format 2.0).
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	return testkit.ReadFile(t, "testdata", name)
}

// loadURLEvent decodes a fixture as the handlers' event type.
func loadURLEvent(t *testing.T, name string) *events.LambdaFunctionURLRequest {
	t.Helper()
	var ev events.LambdaFunctionURLRequest
	if err := json.Unmarshal(fixture(t, name), &ev); err != nil {
		t.Fatal(err)
	}
	return &ev
}

// env is a settings map for core.FromEnv / setup.
type env map[string]string

// setup runs the Lambda build's start-up (start.Prepare, as main does) and
// returns the handler the runtime gets.
func setup(args []string, e env, stdout, stderr io.Writer) (lambda.Handler, error) {
	runner, h, err := start.Prepare(Platform(), args, testkit.Lookup(e), testkit.Environ(e), stdout, stderr)
	if err != nil {
		return nil, err
	}
	return runner.(*Runner).Handler(h), nil
}

// testLog writes the proxy's log lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLog{t}, nil))
}

// proxyFor returns the real proxy handler aimed at target.
func proxyFor(t *testing.T, target string, extra env) (http.Handler, *slog.Logger) {
	t.Helper()
	e := env{"OXY_TARGET": target}
	for k, v := range extra {
		e[k] = v
	}
	cfg, err := core.FromEnv(testkit.Lookup(e), core.Options{Defaults: Defaults(), Environ: testkit.Environ(e)})
	if err != nil {
		t.Fatal(err)
	}
	logger := core.NewLogger(cfg, testLog{t})
	return core.New(cfg, logger, nil), logger
}

// invokeBuffered runs a fixture through setup's handler the way the runtime
// does: event JSON in, reply JSON out.
func invokeBuffered(t *testing.T, ctx context.Context, target string, event []byte, extra env) events.LambdaFunctionURLResponse {
	t.Helper()
	e := env{"OXY_TARGET": target, InvokeModeSetting: ModeBuffered}
	for k, v := range extra {
		e[k] = v
	}
	h, err := setup(nil, e, io.Discard, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.Invoke(ctx, event)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var res events.LambdaFunctionURLResponse
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("reply %q: %v", out, err)
	}
	return res
}

// seen is what the mock upstream received.
type seen struct {
	method, uri string
	header      http.Header
	body        []byte
}

// recorder is a mock upstream handler that records each request and then
// calls reply.
type recorder struct {
	mu    sync.Mutex
	reqs  []seen
	reply http.HandlerFunc
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, seen{r.Method, r.RequestURI, r.Header.Clone(), body})
	rc.mu.Unlock()
	if rc.reply != nil {
		rc.reply(w, r)
	}
}

func (rc *recorder) only(t *testing.T) seen {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.reqs) != 1 {
		t.Fatalf("upstream got %d requests; want 1", len(rc.reqs))
	}
	return rc.reqs[0]
}

func upstream(t *testing.T, reply http.HandlerFunc) (*recorder, *httptest.Server) {
	rc := &recorder{reply: reply}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv
}

// checkChatRequest checks what the upstream received for chat-completions.json.
func checkChatRequest(t *testing.T, got seen) {
	t.Helper()
	if got.method != "POST" || got.uri != "/v1/chat/completions?api-version=2024-06-01&x=a%2Fb;c" {
		t.Errorf("upstream got %s %s; want POST /v1/chat/completions?api-version=2024-06-01&x=a%%2Fb;c", got.method, got.uri)
	}
	want := map[string][]string{
		"Authorization": {"Bearer sk-test-key"},
		"Accept":        {"text/event-stream, application/json"}, // not split on ","
		"Content-Type":  {"application/json"},
		"Openai-Beta":   {"assistants=v2"},
		"User-Agent":    {"OpenAI/Python 1.54.0"},
	}
	for name, v := range want {
		if g := got.header[name]; !equal(g, v) {
			t.Errorf("upstream header %s = %q; want %q", name, g, v)
		}
	}
	for name := range got.header {
		l := strings.ToLower(name)
		if strings.HasPrefix(l, "x-amzn-") || strings.HasPrefix(l, "x-forwarded-") ||
			strings.HasPrefix(l, "x-golambdaproxy-") || l == "cookie" || l == "forwarded" {
			t.Errorf("upstream got platform or client header %s: %q", name, got.header[name])
		}
	}
	if want := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`; string(got.body) != want {
		t.Errorf("upstream body = %q; want %q", got.body, want)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// apiError decodes an OpenAI-shaped error body.
func apiError(t *testing.T, body []byte) core.APIError {
	t.Helper()
	var e struct {
		Error *core.APIError `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		t.Fatalf("body %q is not an OpenAI-shaped error: %v", body, err)
	}
	return *e.Error
}

// binaryBody is the body of binary-body-base64.json.
func binaryBody() []byte {
	b := make([]byte, 0, 300)
	for i := range 256 {
		b = append(b, byte(i))
	}
	return append(b, []byte("\xff\xfe\x00\x80 audio")...)
}

// deadlineCtx is an invocation context that ends after d, as the runtime
// makes one from Lambda-Runtime-Deadline-Ms. With 3 s the proxy answers
// 300 ms early: slack for a loaded machine at a modest cost in test time.
func deadlineCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// hangUntilDone blocks a mock upstream handler until its client gives up or
// the test ends.
func hangUntilDone(t *testing.T, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(time.Minute):
		t.Error("upstream request was never cancelled")
	}
}

// abortMidBody sends a partial body and then cuts the connection.
func abortMidBody(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "1000")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{"partial":`))
	http.NewResponseController(w).Flush()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}
