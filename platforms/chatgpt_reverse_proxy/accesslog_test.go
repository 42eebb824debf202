package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// Secrets and bodies planted in requests and responses; none may reach the log.
var planted = map[string]string{
	"Authorization key":  "sk-PLANTED-auth-0123456789",
	"api-key header":     "PLANTED-azure-key",
	"x-api-key header":   "PLANTED-x-api-key",
	"cookie value":       "PLANTED-cookie-value",
	"query key":          "PLANTED-query-key",
	"request body text":  "PLANTED-request-body",
	"response body text": "PLANTED-response-body",
}

// logUpstream answers like the API, echoing nothing of the request, with an
// x-request-id per endpoint; /v1/broken drops the connection instead.
func newLogUpstream(t *testing.T, streamAck <-chan struct{}) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("X-Request-Id", "req_log_chat")
			writeJSON(w, `{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"`+planted["response body text"]+`"},"finish_reason":"stop"}]}`)
			return
		}
		w.Header().Set("X-Request-Id", "req_log_stream")
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: "+firstEvent+"\n\n")
		_ = http.NewResponseController(w).Flush()
		select { // the rest only once the client read the first event
		case <-streamAck:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: "+secondEvent+"\n\ndata: [DONE]\n\n")
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req_log_models")
		writeJSON(w, modelsListJSON)
	})
	mux.HandleFunc("GET /v1/broken", func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// accessLine is one access-log line as the test expects it.
type accessLine struct {
	method, path string
	status       int
	bytesIn      int
	bytesOut     int
	requestID    string // upstream_request_id, "" when the upstream sent none
}

// TestBinary_accessLog checks the JSON access log: one line per request with
// method, path without query, status, duration, time to first byte, bytes in
// and out and the upstream's x-request-id; and no planted key, cookie, query
// key or body text anywhere in the output, even at debug level.
func TestBinary_accessLog(t *testing.T) {
	streamAck := make(chan struct{})
	up := newLogUpstream(t, streamAck)
	p := startBinary(t, map[string]string{"OXY_TARGET": up.URL, "OXY_LOG_FORMAT": "json", "OXY_LOG_LEVEL": "debug"})
	client := newClient(t)
	do := func(method, path, body string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, p.base()+path+"?key="+planted["query key"]+"&limit=1", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body == "" {
			req.Body = nil
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+planted["Authorization key"])
		req.Header.Set("Api-Key", planted["api-key header"])
		req.Header.Set("X-Api-Key", planted["x-api-key header"])
		req.Header.Set("Cookie", "session="+planted["cookie value"])
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		if !strings.Contains(body, `"stream":true`) {
			b, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatalf("%s %s: reading the body: %v", method, path, err)
			}
			return res, b
		}
		br := bufio.NewReader(res.Body)
		first, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the first event: %v", err)
		}
		close(streamAck)
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		return res, append([]byte(first), rest...)
	}

	chatBody := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + planted["request body text"] + `"}]}`
	streamBody := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"` + planted["request body text"] + `"}]}`
	var want []accessLine
	for _, r := range []struct {
		method, path, body string
		status             int
		requestID          string
	}{
		{"POST", "/v1/chat/completions", chatBody, 200, "req_log_chat"},
		{"GET", "/v1/models", "", 200, "req_log_models"},
		{"POST", "/v1/chat/completions", streamBody, 200, "req_log_stream"},
		{"GET", "/v1/broken", "", 502, ""},
	} {
		res, body := do(r.method, r.path, r.body)
		if res.StatusCode != r.status {
			t.Errorf("%s %s: status %d; want %d", r.method, r.path, res.StatusCode, r.status)
		}
		want = append(want, accessLine{r.method, r.path, r.status, len(r.body), len(body), r.requestID})
	}

	count := func() int { lines, _ := accessLines(p.Stderr.String()); return len(lines) }
	if !testkit.WaitUntil(startTimeout, func() bool { return count() >= len(want) }) {
		t.Errorf("log has %d access lines; want %d", count(), len(want))
	}
	p.Signal(t, syscall.SIGTERM)
	p.Wait(t, exitTimeout)
	out := p.Stderr.String() + p.Stdout.String()

	got, notJSON := accessLines(out)
	for _, l := range notJSON {
		t.Errorf("log line is not JSON: %q", l)
	}
	if len(got) != len(want) {
		t.Errorf("log has %d access lines; want one per request (%d):\n%s", len(got), len(want), out)
	}
	for _, w := range want {
		line := findAccessLine(got, w)
		if line == nil {
			t.Errorf("no access line for %s %s (upstream_request_id %q) in:\n%s", w.method, w.path, w.requestID, out)
			continue
		}
		checkAccessLine(t, line, w)
	}
	for what, secret := range planted {
		if strings.Contains(out, secret) {
			t.Errorf("log contains the %s %q:\n%s", what, secret, out)
		}
	}
	if strings.Contains(out, "PLANTED") {
		t.Errorf("log contains planted text:\n%s", out)
	}
}

// accessLines returns the complete JSON log lines whose message is
// "request", and any complete lines that are not JSON.
func accessLines(out string) (lines []map[string]any, notJSON []string) {
	all := strings.Split(out, "\n")
	for _, l := range all[:len(all)-1] { // the last one is empty or incomplete
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			notJSON = append(notJSON, l)
			continue
		}
		if m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	return lines, notJSON
}

func findAccessLine(lines []map[string]any, w accessLine) map[string]any {
	for _, l := range lines {
		id, _ := l["upstream_request_id"].(string)
		if l["method"] == w.method && l["path"] == w.path && id == w.requestID {
			return l
		}
	}
	return nil
}

func checkAccessLine(t *testing.T, l map[string]any, w accessLine) {
	t.Helper()
	name := w.method + " " + w.path
	for key, want := range map[string]int{"status": w.status, "bytes_in": w.bytesIn, "bytes_out": w.bytesOut} {
		if got, ok := l[key].(float64); !ok || int(got) != want {
			t.Errorf("%s: %s = %v; want %d", name, key, l[key], want)
		}
	}
	duration, ok1 := logDuration(l["duration_ms"])
	ttfb, ok2 := logDuration(l["ttfb_ms"])
	if !ok1 || !ok2 || ttfb <= 0 || ttfb > duration {
		t.Errorf("%s: duration_ms %v, ttfb_ms %v; want numbers of milliseconds with 0 < ttfb <= duration", name, l["duration_ms"], l["ttfb_ms"])
	}
	// The streamed answer's first byte went out before the client read the
	// first event, which came before the upstream sent the rest.
	if w.requestID == "req_log_stream" && ttfb >= duration {
		t.Errorf("%s: ttfb %v not before the end %v of the stream", name, ttfb, duration)
	}
}

// logDuration reads a JSON access log's duration: a number of milliseconds
// (README: "duration_ms", "ttfb_ms").
func logDuration(v any) (time.Duration, bool) {
	ms, ok := v.(float64)
	return time.Duration(ms * float64(time.Millisecond)), ok
}
