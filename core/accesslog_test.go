package core

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestAccessLog_oneLinePerRequestWithFields(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Request-Id", "req_abc")
		w.Header().Set("Set-Cookie", "__cf_bm=PLANTED-COOKIE-OUT")
		w.Write([]byte(`{"answer":"PLANTED-RESPONSE-BODY"}`))
	})
	p := newTestProxy(t, up, "", map[string]string{"OXY_LOG_LEVEL": "debug"})
	body := `{"prompt":"PLANTED-REQUEST-BODY"}`
	req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions?key=PLANTED-QUERY-KEY", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer sk-PLANTED-AUTH")
	req.Header.Set("api-key", "PLANTED-AZURE")
	req.Header.Set("x-api-key", "PLANTED-XAPI")
	req.Header.Set("Cookie", "session=PLANTED-COOKIE-IN")
	req.Header.Set("X-Fc-Access-Key-Secret", "PLANTED-STS")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()

	waitFor(t, func() bool { return len(p.logLines()) == 1 })
	var line map[string]any
	if err := json.Unmarshal([]byte(p.logLines()[0]), &line); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"method": "POST", "path": "/v1/chat/completions", "status": float64(200),
		"bytes_in": float64(len(body)), "bytes_out": float64(len(`{"answer":"PLANTED-RESPONSE-BODY"}`)),
		"upstream_request_id": "req_abc"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v; want %v", k, line[k], v)
		}
	}
	for _, k := range []string{"time", "level"} {
		if _, ok := line[k]; !ok {
			t.Errorf("log line lacks %s: %v", k, line)
		}
	}
	// JSON durations are milliseconds, as numbers (README: access log).
	d, dok := line["duration_ms"].(float64)
	f, fok := line["ttfb_ms"].(float64)
	if !dok || !fok || f <= 0 || f > d || d > 10_000 {
		t.Errorf("duration_ms %v, ttfb_ms %v; want numbers of milliseconds, 0 < ttfb <= duration", line["duration_ms"], line["ttfb_ms"])
	}
	for _, k := range []string{"duration", "ttfb"} {
		if _, ok := line[k]; ok {
			t.Errorf("log line has %s in nanoseconds too: %v", k, line)
		}
	}
	if all := p.Log.String(); strings.Contains(all, "PLANTED") {
		t.Errorf("log output contains a planted secret or body:\n%s", all)
	}
}

// Inside WithAdapter the access-log record exists before the platform's
// adapter runs: the adapter adds fields to the line with AddLogAttrs, the
// requests it answers itself are logged like the rest, the logged path is
// the one proxied, and the health route still has no line.
func TestAccessLog_adapterFields(t *testing.T) {
	up := newAccessUpstream(t, nil)
	adapter := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			AddLogAttrs(r, slog.String("platform_request_id", "req-42"))
			if r.URL.Path == "/platform-only" {
				w.WriteHeader(http.StatusAccepted)
				return
			}
			r2 := *r
			r2.URL = &url.URL{Path: strings.TrimPrefix(r.URL.Path, "/prefix")}
			r2.RequestURI = r2.URL.Path
			next.ServeHTTP(w, &r2)
		})
	}
	p := startAccessProxy(t, up, map[string]string{"OXY_HEALTH_PATH": "/healthz"}, nil, adapter)
	for _, path := range []string{"/prefix/v1/models", "/platform-only", "/healthz"} {
		if res, body := p.do(t, "GET", path, nil); res.StatusCode >= 300 {
			t.Fatalf("GET %s: %d %s", path, res.StatusCode, body)
		}
	}
	var lines []string
	for _, l := range strings.Split(p.logs(), "\n") {
		if strings.Contains(l, "msg=request") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("request lines %q; want 2 (none for the health route)", lines)
	}
	for i, want := range []string{"path=/v1/models route=default status=200", "path=/platform-only status=202"} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "platform_request_id=req-42") {
			t.Errorf("line %q; want %s with the adapter's platform_request_id=req-42", lines[i], want)
		}
	}
}
