package main

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/adapters/redisstore/redistest"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

const (
	budgetKey    = "pk-alice-0123456789abcdef"
	budgetKeyBob = "pk-bob-0123456789abcdef00"
)

// budgetRequest sends one chat request with key to base.
func budgetRequest(t *testing.T, c *http.Client, base, key, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestBinary_twoInstancesShareOneRedisBudget runs two server processes on
// one redis-server: together they never admit more requests in flight, or
// more requests in the minute, than the budget.
func TestBinary_twoInstancesShareOneRedisBudget(t *testing.T) {
	redis := redistest.Start(t)
	up := platformtest.NewUpstream(t)
	env := map[string]string{
		"OXY_TARGET": up.URL, "OXY_AUTH_KEYS": "alice:" + budgetKey + ",bob:" + budgetKeyBob,
		"OXY_UPSTREAM_API_KEY": "sk-real-0123456789abcdef",
		"OXY_LIMITS":           "alice=concurrent:3, bob=rpm:30", "OXY_REDIS_URL": redis.URL(0),
	}
	a, b := startBinary(t, env), startBinary(t, env)
	for _, p := range []*process{a, b} {
		if !p.Stderr.Contains("msg=\"shared in Redis\"") || p.Stderr.Contains("sk-real") {
			t.Fatalf("startup log:\n%s", p.Stderr)
		}
	}
	c := newClient(t)

	// Three streams held open at the upstream, two through a, one through b.
	var streams []*http.Response
	for _, base := range []string{a.base(), b.base(), a.base()} {
		res := budgetRequest(t, c, base, budgetKey, platformtest.StreamRequestBody)
		if res.StatusCode != 200 {
			t.Fatalf("stream through %s: %d", base, res.StatusCode)
		}
		if line, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, "data:") {
			t.Fatalf("first event: %q %v", line, err)
		}
		streams = append(streams, res)
	}
	for _, base := range []string{a.base(), b.base()} {
		res := budgetRequest(t, c, base, budgetKey, `{"model":"gpt-4o-mini"}`)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 429 || !strings.Contains(string(body), "3 requests in flight") {
			t.Errorf("4th in flight, through %s: %d %s; want 429 (the instances share the limit)", base, res.StatusCode, body)
		}
	}
	up.Release()
	for _, res := range streams {
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}

	// Bob: 60 requests at once, half to each instance, for 30 a minute. They
	// must not straddle a minute's end, where rpm starts over.
	if s := time.Now().Second(); s >= 50 {
		time.Sleep(time.Duration(61-s) * time.Second)
	}
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := a.base()
			if i%2 == 1 {
				base = b.base()
			}
			res := budgetRequest(t, c, base, budgetKeyBob, `{"model":"gpt-4o-mini"}`)
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			mu.Lock()
			codes[res.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200] != 30 || codes[429] != 30 {
		t.Errorf("bob's statuses %v; want 30 x 200 and 30 x 429 (30 per minute across both instances)", codes)
	}
	if n := len(up.Seen()); n != 3+30 {
		t.Errorf("upstream received %d requests; want 33 (alice's 3 streams, bob's 30)", n)
	}
}

// TestBinary_badRedisURL proves that an OXY_REDIS_URL the Redis client
// refuses stops start-up before listening, with the reason and without the
// password; so does one core refuses.
func TestBinary_badRedisURL(t *testing.T) {
	for _, u := range []string{"redis://:hunter2secret@127.0.0.1:6379/0?dial_timeot=3s", "redis://:hunter2/secret@127.0.0.1:6379/0"} {
		env := withListenAddr(map[string]string{
			"OXY_AUTH_KEYS": "alice:" + budgetKey, "OXY_UPSTREAM_API_KEY": "sk-real-0123456789abcdef",
			"OXY_LIMITS": "alice=rpm:3", "OXY_REDIS_URL": u,
		}, 1)
		p := launch(t, env)
		if code := p.Wait(t, exitTimeout); code != 1 {
			t.Errorf("exit code %d; want 1", code)
		}
		stderr := p.Stderr.String()
		if !strings.Contains(stderr, "OXY_REDIS_URL: ") || strings.Contains(stderr, "hunter2") || p.Stderr.Contains(listeningLine...) {
			t.Errorf("OXY_REDIS_URL=%q: stderr:\n%s", u, stderr)
		}
	}
}
