package core

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// bodyRecorder keeps the last request body and Content-Length it got.
type bodyRecorder struct {
	mu     sync.Mutex
	body   string
	length int64
}

func (u *bodyRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.body, u.length = string(b), r.ContentLength
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{}`)
}

func (u *bodyRecorder) last() (string, int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.body, u.length
}

func TestProxy_streamUsage(t *testing.T) {
	const streamed = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello"}]}`
	const withUsage = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello"}],"stream_options":{"include_usage":true}}`
	for _, tc := range []struct {
		name, setting, path, contentType, body, want string
		chunked                                      bool
	}{
		{"on: added", "true", "/v1/chat/completions", "application/json", streamed, withUsage, false},
		{"on: added to a chunked body", "true", "/v1/chat/completions", "application/json", streamed, withUsage, true},
		{"on: Azure path", "true", "/openai/deployments/gpt4o/chat/completions", "application/json; charset=utf-8", streamed, withUsage, false},
		{"on: not streamed", "true", "/v1/chat/completions", "application/json", `{"model":"m", "messages":[]}`, `{"model":"m", "messages":[]}`, false},
		{"on: other endpoint", "true", "/v1/responses", "application/json", `{"stream":true}`, `{"stream":true}`, false},
		{"on: not JSON", "true", "/v1/chat/completions", "text/plain", `{"stream":true}`, `{"stream":true}`, false},
		{"on: client chose", "true", "/v1/chat/completions", "application/json", `{"stream":true,"stream_options":{"include_usage":false}}`, `{"stream":true,"stream_options":{"include_usage":false}}`, true},
		{"off: untouched", "", "/v1/chat/completions", "application/json", streamed, streamed, false},
		{"off explicitly", "false", "/v1/chat/completions", "application/json", streamed, streamed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &bodyRecorder{}
			env := map[string]string{}
			if tc.setting != "" {
				env["OXY_STREAM_USAGE"] = tc.setting
			}
			p := newTestProxy(t, up, "", env)
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // unknown length: sent chunked
			}
			res, err := http.Post(p.URL+tc.path, tc.contentType, body)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			got, length := up.last()
			if got != tc.want {
				t.Errorf("upstream got %s; want %s", got, tc.want)
			}
			if length != -1 && length != int64(len(got)) {
				t.Errorf("upstream Content-Length %d for a %d-byte body", length, len(got))
			}
		})
	}
}

// A body over the limit is sent whole and unchanged.
func TestProxy_streamUsageLargeBodyUntouched(t *testing.T) {
	up := &bodyRecorder{}
	p := newTestProxy(t, up, "", map[string]string{"OXY_STREAM_USAGE": "true"})
	big := `{"stream":true,"messages":[{"role":"user","content":"` + strings.Repeat("a", maxStreamUsageBody) + `"}]}`
	for _, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader(big)
		if chunked {
			body = io.MultiReader(body)
		}
		res, err := http.Post(p.URL+"/v1/chat/completions", "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got, _ := up.last(); got != big {
			t.Errorf("chunked=%v: upstream got %d bytes, changed; want the %d bytes sent", chunked, len(got), len(big))
		}
	}
}
