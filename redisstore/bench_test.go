package redisstore

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/redisstore/redistest"
)

// BenchmarkBudgets measures what a budget adds to one request through the
// core handler over loopback sockets, requests one after another: no limits,
// limits in memory, limits in a redis-server on 127.0.0.1 (one round trip to
// admit, one to end the request). For docs/BENCHMARKS.md:
//
//	go test -run '^$' -bench Budgets -count 6 ./redisstore
func BenchmarkBudgets(b *testing.B) {
	body := []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}]}`)
	answer := []byte(`{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}`)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		_, _ = w.Write(answer)
	}))
	defer up.Close()
	srv := redistest.Start(b)
	const key = "pk-alice-0123456789abcdef"
	// Limits far above what the benchmark reaches, so every request is
	// admitted and every limit kind is checked and counted.
	all := "alice=rpm:1000000000/tpm:1000000000/concurrent:1000/tpd:1000000000000"
	for _, tc := range []struct {
		name, limits string
		redis        bool
	}{
		{"limits=none", "", false},
		{"limits=memory", all, false},
		{"limits=redis", all, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			env := map[string]string{"OXY_TARGET": up.URL, "OXY_AUTH_KEYS": "alice:" + key,
				"OXY_UPSTREAM_API_KEY": "sk-real-0123456789", "OXY_LIMITS": tc.limits}
			var opts []core.Option
			if tc.redis {
				env["OXY_REDIS_URL"] = srv.URL(0)
				s, err := New(srv.URL(0), nil, Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				opts = append(opts, core.WithLimiter(s))
			}
			cfg, err := core.FromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, core.Options{})
			if err != nil {
				b.Fatal(err)
			}
			px := httptest.NewServer(core.New(cfg, nil, nil, opts...))
			defer px.Close()
			client := px.Client()
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				res, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	}
}
