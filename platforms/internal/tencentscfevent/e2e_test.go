package tencentscfevent_test

// End-to-end tests: the real platforms/tencentscfevent binary, started as the
// SCF Go runtime starts it (_LAMBDA_SERVER_PORT), called over net/rpc with
// Function.Ping and Function.Invoke exactly as the runtime calls it, with API
// gateway and function-URL event fixtures from testdata/ and a mock upstream.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tencentyun/scf-go-lib/cloudfunction/messages"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

const testVersion = "9.9.9-test"

// binary is the entrypoint built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tencentscfevent-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "main")
	err = testkit.GoBuild(binary, "../../tencentscfevent",
		"-ldflags", "-X github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core.Version="+testVersion)
	if err != nil {
		fmt.Fprintf(os.Stderr, "building the entrypoint: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// seen is one request as the mock upstream received it.
type seen struct {
	Method, Path, RawQuery, Host string
	Header                       http.Header
	Body                         []byte
}

type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

var speech = bytes.Repeat([]byte{0xff, 0xfb, 0x90, 0x00, 0x01, 0x80}, 1000)

// newUpstream starts the mock AI API. Its paths choose the answer.
func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Header.Clone(), body})
		u.mu.Unlock()
		switch r.URL.Path {
		case "/v1/audio/speech":
			w.Header().Set("Content-Type", "audio/mpeg")
			w.Write(speech)
		case "/v1/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: {\"n\":%d}\n\n", i)
				w.(http.Flusher).Flush()
			}
			io.WriteString(w, "data: [DONE]\n\n")
		case "/v1/broken":
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {\"n\":0}\n\n")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // cuts the connection mid-body
		case "/v1/huge":
			w.Header().Set("Content-Type", "text/plain")
			chunk := strings.Repeat("a", 1<<20)
			for range 7 {
				io.WriteString(w, chunk)
			}
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Request-Id", "req-upstream-1")
			w.Header().Add("Set-Cookie", "__cf_bm=one; Path=/; HttpOnly")
			w.Header().Add("Set-Cookie", "_cfuvid=two; Path=/; Secure")
			w.Header().Set("Alt-Svc", `h3=":443"`)
			io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","content":"你好 <b>&</b>"}`)
		}
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.reqs)
}

func (u *upstream) only(t *testing.T) seen {
	t.Helper()
	reqs := u.requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream got %d requests; want 1", len(reqs))
	}
	return reqs[0]
}

// function is a running entrypoint and an RPC client connected to it.
type function struct {
	client *rpc.Client
	logs   *testkit.LogBuffer
}

// startFunction starts the binary with the given settings on a free loopback
// port, as the SCF Go runtime starts it (_LAMBDA_SERVER_PORT), and waits
// until it answers Function.Ping. At the end of the test it gets SIGTERM, as
// the platform sends, and must exit cleanly.
func startFunction(t *testing.T, settings ...string) *function {
	t.Helper()
	var client *rpc.Client
	env := append([]string{"OXY_HOST=127.0.0.1", "OXY_LOG_FORMAT=json"}, settings...)
	p, _ := testkit.StartServer(t, binary, "_LAMBDA_SERVER_PORT", env, func(_ *testkit.Process, port int) bool {
		c, err := rpc.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		client = c
		return err == nil
	})
	t.Cleanup(func() { p.Stop(t) })
	t.Cleanup(func() { client.Close() }) // runs before the process is stopped
	var pong messages.PingResponse
	if err := client.Call("Function.Ping", &messages.PingRequest{}, &pong); err != nil {
		t.Fatalf("Function.Ping: %v", err)
	}
	return &function{client: client, logs: p.Stderr}
}

// freePort returns a free loopback port as a string.
func freePort(t *testing.T) string { return strconv.Itoa(testkit.FreePort(t)) }

// reply is the integrated response as the gateway reads it.
type reply struct {
	IsBase64Encoded bool           `json:"isBase64Encoded"`
	StatusCode      int            `json:"statusCode"`
	Headers         map[string]any `json:"headers"`
	Body            string         `json:"body"`
}

func (r reply) body(t *testing.T) []byte {
	t.Helper()
	if !r.IsBase64Encoded {
		return []byte(r.Body)
	}
	b, err := base64.StdEncoding.DecodeString(r.Body)
	if err != nil {
		t.Fatalf("reply body is not base64: %v", err)
	}
	return b
}

// apiError decodes an OpenAI-shaped error body.
func (r reply) apiError(t *testing.T) (code, typ, message string) {
	t.Helper()
	var e struct {
		Error struct{ Message, Type, Code string }
	}
	if err := json.Unmarshal(r.body(t), &e); err != nil || e.Error.Code == "" {
		t.Fatalf("reply body %q is not an OpenAI-shaped error (%v)", r.Body, err)
	}
	return e.Error.Code, e.Error.Type, e.Error.Message
}

// invoke calls Function.Invoke with payload, as the SCF runtime does.
func (f *function) invoke(t *testing.T, payload []byte) reply {
	t.Helper()
	req := &messages.InvokeRequest{
		Payload:         payload,
		RequestId:       "scf-req-1",
		Deadline:        messages.InvokeRequest_Timestamp{Seconds: time.Now().Add(5 * time.Minute).Unix()},
		FunctionName:    "chatgpt-proxy",
		Namespace:       "default",
		FunctionVersion: "$LATEST",
		MemoryLimitInMb: 128,
		TimeLimitInMs:   300000,
	}
	var res messages.InvokeResponse
	if err := f.client.Call("Function.Invoke", req, &res); err != nil {
		t.Fatalf("Function.Invoke: %v", err)
	}
	if res.Error != nil {
		t.Fatalf("Function.Invoke returned a function error %+v; want a reply", *res.Error)
	}
	var r reply
	if err := json.Unmarshal(res.Payload, &r); err != nil {
		t.Fatalf("reply %q is not JSON: %v", res.Payload, err)
	}
	return r
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	return testkit.ReadFile(t, "testdata", name)
}

// eventWith returns a fixture with some top-level fields replaced.
func eventWith(t *testing.T, name string, fields map[string]any) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(fixture(t, name), &ev); err != nil {
		t.Fatal(err)
	}
	for k, v := range fields {
		ev[k] = v
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPing(t *testing.T) {
	up := newUpstream(t)
	f := startFunction(t, "OXY_TARGET="+up.URL)
	var pong messages.PingResponse
	if err := f.client.Call("Function.Ping", &messages.PingRequest{}, &pong); err != nil {
		t.Fatalf("Function.Ping: %v", err)
	}
}

func TestInvoke_apiGatewayEvent(t *testing.T) {
	up := newUpstream(t)
	f := startFunction(t, "OXY_TARGET="+up.URL+"/base")
	r := f.invoke(t, fixture(t, "apigw_chat.json"))

	got := up.only(t)
	if got.Method != "POST" || got.Path != "/base/v1/chat/completions" {
		t.Errorf("upstream got %s %s; want POST /base/v1/chat/completions", got.Method, got.Path)
	}
	// queryString: a string, an array and a flag (true), in key order.
	if want := "api-version=2024-02-01&stream&tag=a+b&tag=c%26d"; got.RawQuery != want {
		t.Errorf("upstream query %q; want %q", got.RawQuery, want)
	}
	if want := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"你好 <b>&</b>"}]}`; string(got.Body) != want {
		t.Errorf("upstream body %q; want %q", got.Body, want)
	}
	if cl := got.Header.Get("Content-Length"); cl != fmt.Sprint(len(got.Body)) {
		t.Errorf("upstream Content-Length %q; want %d (the event's own 999 is not used)", cl, len(got.Body))
	}
	for name, want := range map[string]string{
		"Authorization":       "Bearer sk-test-secret-key",
		"Content-Type":        "application/json",
		"Openai-Organization": "org-test",
		"User-Agent":          "OpenAI/Python 1.0",
	} {
		if v := got.Header.Get(name); v != want {
			t.Errorf("upstream %s = %q; want %q", name, v, want)
		}
	}
	if got.Host != strings.TrimPrefix(up.URL, "http://") {
		t.Errorf("upstream Host %q; want the target's", got.Host)
	}

	if r.StatusCode != 200 || r.IsBase64Encoded {
		t.Errorf("reply status %d, isBase64Encoded %v; want 200, false", r.StatusCode, r.IsBase64Encoded)
	}
	if want := `{"id":"chatcmpl-1","object":"chat.completion","content":"你好 <b>&</b>"}`; r.Body != want {
		t.Errorf("reply body %q; want %q", r.Body, want)
	}
	if ct := r.Headers["Content-Type"]; ct != "application/json" {
		t.Errorf("reply Content-Type %v; want application/json", ct)
	}
	if id := r.Headers["X-Request-Id"]; id != "req-upstream-1" {
		t.Errorf("reply X-Request-Id %v; want req-upstream-1", id)
	}
	if _, ok := r.Headers["Alt-Svc"]; ok {
		t.Errorf("reply has Alt-Svc; want it dropped")
	}
}

// Multiple Set-Cookie values travel as an array in headers, the form Tencent's
// API gateway accepts, instead of being lost or comma-joined.
func TestInvoke_multipleSetCookies(t *testing.T) {
	up := newUpstream(t)
	f := startFunction(t, "OXY_TARGET="+up.URL)
	r := f.invoke(t, fixture(t, "apigw_chat.json"))
	want := []any{"__cf_bm=one; Path=/; HttpOnly", "_cfuvid=two; Path=/; Secure"}
	got, ok := r.Headers["Set-Cookie"].([]any)
	if !ok || !slices.Equal(got, want) {
		t.Errorf("reply Set-Cookie %#v; want %#v", r.Headers["Set-Cookie"], want)
	}
}

func TestInvoke_platformHeadersNeverReachUpstream(t *testing.T) {
	up := newUpstream(t)
	f := startFunction(t, "OXY_TARGET="+up.URL)
	f.invoke(t, fixture(t, "apigw_chat.json"))
	f.invoke(t, fixture(t, "function_url.json"))
	reqs := up.requests()
	if len(reqs) != 2 {
		t.Fatalf("upstream got %d requests; want 2", len(reqs))
	}
	for _, name := range []string{
		"X-Scf-Request-Id", "X-Scf-Appid", "X-Scf-Uin", "X-Scf-Region", "X-Scf-Secret-Id", "X-Scf-Secret-Key",
		"X-Scf-Session-Token", "X-Scf-Remote-Addr", "X-Api-Requestid", "X-Client-Proto", "X-Client-Proto-Ver",
		"Endpoint-Timeout", "Cookie", "X-Forwarded-For", "X-Real-Ip",
	} {
		for i, req := range reqs {
			if v, ok := req.Header[name]; ok {
				t.Errorf("request %d: upstream got %s: %q; want it stripped", i, name, v)
			}
		}
	}
	for _, req := range reqs {
		for name, vals := range req.Header {
			for _, v := range vals {
				if strings.Contains(v, "scf-secret") || strings.Contains(v, "AKID") {
					t.Errorf("upstream got %s: %q, a platform credential", name, v)
				}
			}
		}
	}
}

func TestInvoke_base64Body(t *testing.T) {
	up := newUpstream(t)
	f := startFunction(t, "OXY_TARGET="+up.URL)
	r := f.invoke(t, fixture(t, "apigw_base64.json"))
	if r.StatusCode != 200 {
		t.Fatalf("reply status %d; want 200", r.StatusCode)
	}
	got := up.only(t)
	want := append(bytesRange(), "--end"...)
	if !bytes.Equal(got.Body, want) {
		t.Errorf("upstream body %q; want the decoded bytes %q", got.Body, want)
	}
}

func bytesRange() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// Function-URL events have no requestContext and no isBase64Encoded.
func TestInvoke_functionURLEvent(t *testing.T) {
	up := newUpstream(t)
	f := startFunction(t, "OXY_TARGET="+up.URL)
	r := f.invoke(t, fixture(t, "function_url.json"))
	if r.StatusCode != 200 {
		t.Fatalf("reply status %d; want 200", r.StatusCode)
	}
	got := up.only(t)
	if got.Method != "POST" || got.Path != "/v1/embeddings" || got.RawQuery != "a=1&b=2" {
		t.Errorf("upstream got %s %s?%s; want POST /v1/embeddings?a=1&b=2", got.Method, got.Path, got.RawQuery)
	}
	if string(got.Body) != `{"input":"hello"}` {
		t.Errorf("upstream body %q; want the event body", got.Body)
	}
	if a := got.Header.Get("Authorization"); a != "Bearer sk-test-secret-key" {
		t.Errorf("upstream Authorization %q; want the client's", a)
	}
}

func TestInvoke_binaryResponseIsBase64(t *testing.T) {
	up := newUpstream(t)
	f := startFunction(t, "OXY_TARGET="+up.URL)
	r := f.invoke(t, eventWith(t, "apigw_chat.json", map[string]any{"path": "/v1/audio/speech"}))
	if r.StatusCode != 200 || !r.IsBase64Encoded {
		t.Fatalf("reply status %d, isBase64Encoded %v; want 200, true", r.StatusCode, r.IsBase64Encoded)
	}
	if !bytes.Equal(r.body(t), speech) {
		t.Errorf("reply body differs from the upstream's audio")
	}
	if ct := r.Headers["Content-Type"]; ct != "audio/mpeg" {
		t.Errorf("reply Content-Type %v; want audio/mpeg", ct)
	}
}

// A streaming request still works on the event function: the whole stream
// arrives in one reply at the end.
func TestInvoke_streamReturnedWhole(t *testing.T) {
	up := newUpstream(t)
	f := startFunction(t, "OXY_TARGET="+up.URL)
	r := f.invoke(t, eventWith(t, "apigw_chat.json", map[string]any{"path": "/v1/stream"}))
	want := "data: {\"n\":0}\n\ndata: {\"n\":1}\n\ndata: {\"n\":2}\n\ndata: [DONE]\n\n"
	if r.StatusCode != 200 || r.IsBase64Encoded || r.Body != want {
		t.Errorf("reply status %d, base64 %v, body %q; want 200, false, %q", r.StatusCode, r.IsBase64Encoded, r.Body, want)
	}
	if ct := r.Headers["Content-Type"]; ct != "text/event-stream" {
		t.Errorf("reply Content-Type %v; want text/event-stream", ct)
	}
}

// An upstream that breaks off mid-body must not be returned as a clean 200
// with a truncated body.
func TestInvoke_midBodyFailureIsAnError(t *testing.T) {
	up := newUpstream(t)
	f := startFunction(t, "OXY_TARGET="+up.URL)
	r := f.invoke(t, eventWith(t, "apigw_chat.json", map[string]any{"path": "/v1/broken"}))
	if r.StatusCode != http.StatusBadGateway {
		t.Fatalf("reply status %d, body %q; want 502", r.StatusCode, r.Body)
	}
	if code, _, _ := r.apiError(t); code != "upstream_error" {
		t.Errorf("error code %q; want upstream_error", code)
	}
	if !f.logs.WaitFor(30*time.Second, `"aborted":true`) {
		t.Errorf("access log does not mark the request aborted:\n%s", f.logs)
	}
}

func TestInvoke_replyOver6MBIsAnError(t *testing.T) {
	up := newUpstream(t)
	f := startFunction(t, "OXY_TARGET="+up.URL)
	r := f.invoke(t, eventWith(t, "apigw_chat.json", map[string]any{"path": "/v1/huge"}))
	if r.StatusCode != http.StatusBadGateway {
		t.Fatalf("reply status %d; want 502", r.StatusCode)
	}
	code, _, msg := r.apiError(t)
	if code != "response_too_large" || !strings.Contains(msg, "6 MB") {
		t.Errorf("error %q: %q; want response_too_large naming the 6 MB limit", code, msg)
	}
}

func TestInvoke_upstreamUnreachable(t *testing.T) {
	f := startFunction(t, "OXY_TARGET=http://127.0.0.1:"+freePort(t)) // nothing listens there
	r := f.invoke(t, fixture(t, "apigw_chat.json"))
	if r.StatusCode != http.StatusBadGateway {
		t.Fatalf("reply status %d; want 502", r.StatusCode)
	}
	if code, _, _ := r.apiError(t); code != "upstream_unreachable" {
		t.Errorf("error code %q; want upstream_unreachable", code)
	}
}

// A malformed event gets an OpenAI-shaped 400 reply; the process keeps
// running and serves the next event.
func TestInvoke_malformedEvents(t *testing.T) {
	up := newUpstream(t)
	f := startFunction(t, "OXY_TARGET="+up.URL)
	names, err := filepath.Glob("testdata/malformed_*")
	if err != nil || len(names) == 0 {
		t.Fatalf("no malformed fixtures (%v)", err)
	}
	for _, name := range append(names, "") {
		sub := filepath.Base(name)
		if name == "" {
			sub = "empty_payload"
		}
		t.Run(sub, func(t *testing.T) {
			payload := []byte{}
			if name != "" {
				payload = fixture(t, filepath.Base(name))
			}
			r := f.invoke(t, payload)
			if r.StatusCode != http.StatusBadRequest {
				t.Fatalf("reply status %d, body %q; want 400", r.StatusCode, r.Body)
			}
			code, typ, msg := r.apiError(t)
			if code != "invalid_event" || typ != "invalid_request_error" {
				t.Errorf("error %s/%s; want invalid_request_error/invalid_event", typ, code)
			}
			if strings.Contains(msg, "sk-leaked") {
				t.Errorf("error message %q repeats a query value", msg)
			}
			if ct := r.Headers["Content-Type"]; ct != "application/json; charset=utf-8" {
				t.Errorf("reply Content-Type %v; want application/json; charset=utf-8", ct)
			}
		})
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream got %d requests from malformed events; want 0", n)
	}
	if r := f.invoke(t, fixture(t, "apigw_chat.json")); r.StatusCode != 200 {
		t.Errorf("valid event after malformed ones: status %d; want 200", r.StatusCode)
	}
	// The valid request's access line is logged after every warning.
	if !f.logs.WaitFor(30*time.Second, `"path":"/v1/chat/completions"`) || !strings.Contains(f.logs.String(), "invalid event") {
		t.Errorf("logs lack the invalid-event warnings or the access line:\n%s", f.logs)
	}
	if strings.Contains(f.logs.String(), "sk-leaked") {
		t.Errorf("logs repeat a query value:\n%s", f.logs)
	}
}

// The logs carry one access line per request but never keys, cookies,
// platform credentials or bodies.
func TestLogs_neverCarrySecrets(t *testing.T) {
	up := newUpstream(t)
	f := startFunction(t, "OXY_TARGET="+up.URL, "OXY_LOG_LEVEL=debug")
	f.invoke(t, fixture(t, "apigw_chat.json"))
	if !f.logs.WaitFor(30*time.Second, `"path":"/v1/chat/completions"`) {
		t.Errorf("no access-log line for the request:\n%s", f.logs)
	}
	logs := f.logs.String()
	// The body's text never appears; its model does, as the access log's
	// model field (issue 12), and nowhere else.
	if !strings.Contains(logs, `"model":"gpt-4o-mini"`) || strings.Count(logs, "gpt-4o-mini") != strings.Count(logs, `"model":"gpt-4o-mini"`) {
		t.Errorf("the model appears outside the access log's model field:\n%s", logs)
	}
	for _, secret := range []string{"sk-test-secret-key", "cookie-secret-value", "scf-secret-key-value",
		"scf-session-token-value", "你好", "<b>", "__cf_bm=one", "2024-02-01"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	out, err := exec.Command(binary, "-version").Output()
	if err != nil {
		t.Fatalf("-version: %v", err)
	}
	if !strings.HasPrefix(string(out), "chatgpt_reverse_proxy "+testVersion+" ") {
		t.Errorf("-version printed %q; want chatgpt_reverse_proxy %s ...", out, testVersion)
	}
}

func TestHelpFlag(t *testing.T) {
	cmd := exec.Command(binary, "-h")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		t.Fatalf("-h: %v; want exit 0", err)
	}
	for _, want := range []string{"(tencentscfevent)", "OXY_TARGET", "_LAMBDA_SERVER_PORT"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("-h output on stdout lacks %q:\n%s", want, &stdout)
		}
	}
	err := exec.Command(binary, "-no-such-flag").Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("bad flag: %v; want exit status 2", err)
	}
}

func TestStartup_errorsExit1(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"bad setting", []string{"_LAMBDA_SERVER_PORT=" + freePort(t), "OXY_TARGET=api.openai.com", "OXY_HOST=127.0.0.1"},
			`OXY_TARGET="api.openai.com": missing scheme`},
		{"unknown setting", []string{"_LAMBDA_SERVER_PORT=" + freePort(t), "OXY_TAGRET=https://x", "OXY_HOST=127.0.0.1"},
			"OXY_TAGRET: unknown setting, did you mean OXY_TARGET?"},
		{"no runtime port", []string{"OXY_HOST=127.0.0.1"}, "_LAMBDA_SERVER_PORT is not set"},
		{"bad runtime port", []string{"_LAMBDA_SERVER_PORT=http", "OXY_HOST=127.0.0.1"}, `_LAMBDA_SERVER_PORT="http": must be a port number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binary)
			cmd.Env = tt.env
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("exit %v; want status 1\n%s", err, &stderr)
			}
			if !strings.HasPrefix(stderr.String(), "chatgpt_reverse_proxy: error: ") || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q; want chatgpt_reverse_proxy: error: ... %s", &stderr, tt.want)
			}
		})
	}
}

// eventEdited returns a fixture with headers set (an empty value deletes
// one) and, if sourceIP is not empty, requestContext.sourceIp replaced.
func eventEdited(t *testing.T, name string, headers map[string]string, sourceIP string) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(fixture(t, name), &ev); err != nil {
		t.Fatal(err)
	}
	h := ev["headers"].(map[string]any)
	for k, v := range headers {
		if v == "" {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	if sourceIP != "" {
		ev["requestContext"].(map[string]any)["sourceIp"] = sourceIP
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// OXY_ALLOW_CIDRS judges the address SCF puts in the event: an API gateway
// event's requestContext.sourceIp, a function-URL event's x-scf-remote-addr.
// What the client controls (X-Forwarded-For, X-Real-Ip, and any
// X-Scf-Remote-Addr header in an API gateway event) never lets it in.
func TestInvoke_allowListUsesEventAddress(t *testing.T) {
	up := newUpstream(t)
	f := startFunction(t, "OXY_TARGET="+up.URL, "OXY_ALLOW_CIDRS=203.0.113.0/24,111.206.96.0/24")
	forged := map[string]string{"X-Forwarded-For": "203.0.113.7", "X-Real-Ip": "203.0.113.7", "X-Scf-Remote-Addr": "203.0.113.7"}
	tests := []struct {
		name   string
		event  []byte
		status int
	}{
		{"gateway sourceIp listed", fixture(t, "apigw_chat.json"), 200},
		{"gateway sourceIp not listed, forged headers", eventEdited(t, "apigw_chat.json", forged, "198.51.100.9"), 403},
		{"function url address listed", fixture(t, "function_url.json"), 200},
		{"function url address not listed, forged X-Forwarded-For", eventEdited(t, "function_url.json",
			map[string]string{"x-scf-remote-addr": "198.51.100.9", "x-forwarded-for": "203.0.113.7"}, ""), 403},
		{"function url without x-scf-remote-addr", eventEdited(t, "function_url.json",
			map[string]string{"x-scf-remote-addr": "", "x-forwarded-for": "203.0.113.7"}, ""), 403},
	}
	for _, tt := range tests {
		r := f.invoke(t, tt.event)
		if r.StatusCode != tt.status {
			t.Errorf("%s: reply status %d (%s); want %d", tt.name, r.StatusCode, r.Body, tt.status)
		}
		if r.StatusCode == 403 {
			if code, _, _ := r.apiError(t); code != "address_not_allowed" {
				t.Errorf("%s: error code %q; want address_not_allowed", tt.name, code)
			}
		}
	}
	if n := len(up.requests()); n != 2 {
		t.Errorf("upstream got %d requests; want only the 2 allowed ones", n)
	}
}
