package redisstore

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/adapters/redisstore/redistest"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// BenchmarkBudgets measures what a budget adds to one request through the
// core handler over loopback sockets, requests one after another: no
// limits, limits in memory, limits in a redis-server on 127.0.0.1 (one
// script to admit, one transaction to end the request). The three are
// interleaved, a round of each in turn with the starting one rotating, so
// that a busy machine slows all three alike; each figure is the median over
// rounds of the mean time per request. For docs/BENCHMARKS.md:
//
//	go test -run '^$' -bench Budgets -benchtime 40x ./adapters/redisstore
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
	// admitted and every kind of limit is checked and counted.
	all := "alice=rpm:1000000000/tpm:1000000000/concurrent:1000/tpd:1000000000000"
	type target struct {
		name  string
		url   string
		c     *http.Client
		means []float64 // µs per request, one per round
	}
	var targets []*target
	for _, tc := range []struct {
		name, limits string
		redis        bool
	}{{"none", "", false}, {"memory", all, false}, {"redis", all, true}} {
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
		targets = append(targets, &target{name: tc.name, url: px.URL + "/v1/chat/completions", c: px.Client()})
	}
	send := func(t *target) {
		req, _ := http.NewRequest("POST", t.url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := t.c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatalf("%s: status %d", t.name, res.StatusCode)
		}
	}
	const perRound = 200
	for _, t := range targets { // warm up connections and the script cache
		for range 50 {
			send(t)
		}
	}
	round := 0
	for b.Loop() {
		for i := range targets {
			t := targets[(i+round)%len(targets)]
			start := time.Now()
			for range perRound {
				send(t)
			}
			t.means = append(t.means, float64(time.Since(start).Microseconds())/perRound)
		}
		round++
	}
	med := map[string]float64{}
	for _, t := range targets {
		slices.Sort(t.means)
		med[t.name] = t.means[len(t.means)/2]
		b.ReportMetric(med[t.name], "µs/req-"+t.name)
	}
	b.ReportMetric(med["memory"]-med["none"], "µs-added-memory")
	b.ReportMetric(med["redis"]-med["none"], "µs-added-redis")
	b.ReportMetric(med["redis"]/med["none"], "x-redis/none")
}
