package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// forwardProxy is a mock HTTP forward proxy (what HTTPS_PROXY points at). It
// records the request line of each request; it answers absolute-form requests
// itself and refuses CONNECT tunnels.
type forwardProxy struct {
	srv   *httptest.Server
	mu    sync.Mutex
	lines []string
}

const proxyAnswer = `{"object":"list","data":[{"id":"via-forward-proxy","object":"model","created":0,"owned_by":"system"}]}`

func newForwardProxy(t *testing.T) *forwardProxy {
	t.Helper()
	fp := &forwardProxy{}
	fp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fp.mu.Lock()
		fp.lines = append(fp.lines, r.Method+" "+r.RequestURI)
		fp.mu.Unlock()
		if r.Method == http.MethodConnect {
			http.Error(w, "tunnel refused by the test proxy", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, proxyAnswer)
	}))
	t.Cleanup(fp.srv.Close)
	return fp
}

func (fp *forwardProxy) requestLines() []string {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return slices.Clone(fp.lines)
}

// TestBinary_proxyEnvironment checks that HTTP_PROXY, HTTPS_PROXY and NO_PROXY
// steer the upstream connection. The target upstream.test never resolves, so
// only a request that went through the forward proxy can succeed. (Go never
// proxies loopback targets, hence the made-up name.)
func TestBinary_proxyEnvironment(t *testing.T) {
	tests := []struct {
		name      string
		target    string
		proxyVar  string
		noProxy   string
		wantLines []string
		wantCode  int
	}{
		{
			name:      "HTTP_PROXY for an http target",
			target:    "http://upstream.test",
			proxyVar:  "HTTP_PROXY",
			wantLines: []string{"GET http://upstream.test/v1/models?limit=2"},
			wantCode:  http.StatusOK,
		},
		{
			name:      "HTTPS_PROXY for an https target",
			target:    "https://upstream.test",
			proxyVar:  "HTTPS_PROXY",
			wantLines: []string{"CONNECT upstream.test:443"},
			wantCode:  http.StatusBadGateway,
		},
		{
			name:     "NO_PROXY bypasses the proxy",
			target:   "http://upstream.test",
			proxyVar: "HTTP_PROXY",
			noProxy:  "upstream.test",
			wantCode: http.StatusBadGateway,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp := newForwardProxy(t)
			env := map[string]string{"OXY_TARGET": tt.target, tt.proxyVar: fp.srv.URL, "OXY_DIAL_TIMEOUT": "5s"}
			if tt.noProxy != "" {
				env["NO_PROXY"] = tt.noProxy
			}
			p := startBinary(t, env)
			res, err := newClient(t).Get(p.base() + "/v1/models?limit=2")
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatalf("reading the body: %v", err)
			}
			if got := fp.requestLines(); !slices.Equal(got, tt.wantLines) {
				t.Errorf("forward proxy got request lines %q; want %q", got, tt.wantLines)
			}
			if res.StatusCode != tt.wantCode {
				t.Fatalf("status %d; want %d; body %s", res.StatusCode, tt.wantCode, body)
			}
			if tt.wantCode == http.StatusOK {
				if string(body) != proxyAnswer {
					t.Errorf("body = %s; want the forward proxy's answer %s", body, proxyAnswer)
				}
				return
			}
			checkOpenAIError(t, res, body)
		})
	}
}

// checkOpenAIError checks that a proxy-made error has the OpenAI API's error
// shape: {"error":{"message":"...","type":"...","code":...}}.
func checkOpenAIError(t *testing.T, res *http.Response, body []byte) {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q; want application/json", ct)
	}
	var e struct {
		Error *struct {
			Message *string         `json:"message"`
			Type    *string         `json:"type"`
			Code    json.RawMessage `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		t.Fatalf("body %s is not {\"error\":{...}}: %v", body, err)
	}
	if e.Error.Message == nil || *e.Error.Message == "" || e.Error.Type == nil || *e.Error.Type == "" || e.Error.Code == nil {
		t.Errorf("error %s lacks a message, type or code", body)
	}
}
