package core

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// testKeys are the pool's keys in the tests: the mock upstream tells them
// apart by value, the logs must never show them.
var testKeys = []Secret{"sk-test-key-one-0001", "sk-test-key-two-0002", "sk-test-key-three-03"}

// keyIndex returns the position (0-based) of the key r carries, or -1.
func keyIndex(r *http.Request) int {
	for i, k := range testKeys {
		if r.Header.Get("Authorization") == "Bearer "+k.Reveal() {
			return i
		}
	}
	return -1
}

// keyedAttempt is one request the mock upstream received.
type keyedAttempt struct {
	key  int
	body []byte
	at   time.Time
}

// keyedUpstream is a mock upstream that answers per key: answer(key, n)
// handles the n-th request (0-based) carrying that key.
type keyedUpstream struct {
	mu       sync.Mutex
	attempts []keyedAttempt
	perKey   map[int]int
	answer   func(w http.ResponseWriter, r *http.Request, key, n int)
}

func (u *keyedUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	k := keyIndex(r)
	u.mu.Lock()
	u.attempts = append(u.attempts, keyedAttempt{key: k, body: body, at: time.Now()})
	n := u.perKey[k]
	u.perKey[k]++
	u.mu.Unlock()
	if k < 0 {
		http.Error(w, "no pool key", http.StatusTeapot)
		return
	}
	u.answer(w, r, k, n)
}

func (u *keyedUpstream) seen() []keyedAttempt {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]keyedAttempt(nil), u.attempts...)
}

func (u *keyedUpstream) keysSeen() []int {
	var out []int
	for _, a := range u.seen() {
		out = append(out, a.key)
	}
	return out
}

// okAnswer answers 200 naming the key, as a JSON body.
func okAnswer(w http.ResponseWriter, key int) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"served_by":%d}`, key)
}

// vendorAnswer writes status with an error body.
func vendorAnswer(w http.ResponseWriter, status int, header map[string]string, body string) {
	for k, v := range header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// poolProxy is a proxy whose default route has real keys, in front of a
// keyed upstream.
type poolProxy struct {
	*testProxy
	up       *keyedUpstream
	h        *Handler
	observed *recordingObserver
}

// recordingObserver is a KeyObserver that remembers what it was told.
type recordingObserver struct {
	mu      sync.Mutex
	rested  []string // "route key reason"
	retried []string // "route reason"
}

func (o *recordingObserver) KeyRested(route, key, reason string, _ time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rested = append(o.rested, route+" "+key+" "+reason)
}

func (o *recordingObserver) Retried(route, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.retried = append(o.retried, route+" "+reason)
}

func (o *recordingObserver) get() (rested, retried []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.rested...), append([]string(nil), o.retried...)
}

type poolSetup struct {
	keys     int // how many of testKeys; 0: all
	cooldown time.Duration
	retries  string // OXY_RETRIES; empty: the default
	maxBody  string // OXY_RETRY_MAX_BODY; empty: the default
	backoff  time.Duration
	env      map[string]string
	base     func(Config) http.RoundTripper
	http2    bool // the upstream speaks HTTP/2 over TLS
	// raw, if set, answers instead of the keyed answer, before the body is read.
	raw http.HandlerFunc
}

// withRetryBackoff sets the pause before a first retry, so that tests run fast.
func withRetryBackoff(d time.Duration) Option { return func(o *options) { o.retryBackoff = d } }

func newPoolProxy(t *testing.T, s poolSetup, answer func(w http.ResponseWriter, r *http.Request, key, n int)) *poolProxy {
	t.Helper()
	up := &keyedUpstream{perKey: map[int]int{}, answer: answer}
	srv := httptest.NewUnstartedServer(up)
	if s.raw != nil {
		srv = httptest.NewUnstartedServer(s.raw)
	}
	if s.http2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	if s.keys == 0 {
		s.keys = len(testKeys)
	}
	var keys []string
	for _, k := range testKeys[:s.keys] {
		keys = append(keys, k.Reveal())
	}
	e := map[string]string{
		"OXY_TARGET": srv.URL, "OXY_LOG_FORMAT": "json", "OXY_LOG_LEVEL": "debug",
		"OXY_UPSTREAM_API_KEY": strings.Join(keys, ","), "OXY_ALLOW_CIDRS": "127.0.0.1",
	}
	if s.cooldown > 0 {
		e["OXY_KEY_COOLDOWN"] = s.cooldown.String()
	}
	if s.retries != "" {
		e["OXY_RETRIES"] = s.retries
	}
	if s.maxBody != "" {
		e["OXY_RETRY_MAX_BODY"] = s.maxBody
	}
	for k, v := range s.env {
		e[k] = v
	}
	cfg, err := FromEnv(testkit.Lookup(e), Options{Environ: testkit.Environ(e)})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.LogBuffer{}
	tr := NewTransport(cfg)
	if s.http2 {
		tr.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	}
	var base http.RoundTripper = tr
	if s.base != nil {
		base = s.base(cfg)
	}
	if s.backoff == 0 {
		s.backoff = 5 * time.Millisecond
	}
	obs := &recordingObserver{}
	h := New(cfg, NewLogger(cfg, logs), base, withRetryBackoff(s.backoff), WithKeyObserver(obs))
	proxy := httptest.NewServer(h)
	t.Cleanup(proxy.Close)
	return &poolProxy{testProxy: &testProxy{URL: proxy.URL, Server: proxy, Log: logs, Config: cfg}, up: up, h: h, observed: obs}
}

// status returns the state of the default route's keys.
func (p *poolProxy) status() []KeyState { return p.h.KeyStates(context.Background()) }

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func TestKeyPool_rotationSpreadsLoad(t *testing.T) {
	p := newPoolProxy(t, poolSetup{}, func(w http.ResponseWriter, _ *http.Request, key, _ int) { okAnswer(w, key) })
	for range 30 {
		if res, body := get(t, p.URL+"/v1/models"); res.StatusCode != 200 {
			t.Fatalf("status %d: %s", res.StatusCode, body)
		}
	}
	count := map[int]int{}
	for _, k := range p.up.keysSeen() {
		count[k]++
	}
	for i := range testKeys {
		if count[i] != 10 {
			t.Errorf("key #%d served %d of 30 requests; want 10 (%v)", i+1, count[i], count)
		}
	}
}

func TestKeyTransport_429ThenNextKeyReturns200(t *testing.T) {
	p := newPoolProxy(t, poolSetup{keys: 2}, func(w http.ResponseWriter, _ *http.Request, key, _ int) {
		if key == 0 {
			vendorAnswer(w, 429, map[string]string{"Retry-After": "30"},
				`{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}`)
			return
		}
		okAnswer(w, key)
	})
	res, body := get(t, p.URL+"/v1/models")
	if res.StatusCode != 200 || body != `{"served_by":1}` {
		t.Fatalf("got %d %s; want 200 from the second key", res.StatusCode, body)
	}
	if got := p.up.keysSeen(); fmt.Sprint(got) != "[0 1]" {
		t.Errorf("upstream saw keys %v; want [0 1]", got)
	}
	st := p.status()
	if st[0].Route != "default" || st[0].Key != "#1" || st[0].Available || time.Until(st[0].Until) < 28*time.Second || time.Until(st[0].Until) > 30*time.Second {
		t.Errorf("key #1 = %+v; want resting about 30s (its Retry-After)", st[0])
	}
	if !st[1].Available {
		t.Errorf("key #2 = %+v; want available", st[1])
	}
	if !p.Log.WaitFor(time.Second, `"route":"default","status":200`, `"upstream_key":"#2","retries":1,"retry_reasons":"rate_limited"`) {
		t.Errorf("access log does not name key #2 and the retry:\n%s", p.Log)
	}
	rested, retried := p.observed.get()
	if fmt.Sprint(rested) != "[default #1 rate_limited]" || fmt.Sprint(retried) != "[default rate_limited]" {
		t.Errorf("observer got rested %v, retried %v; want one rest and one retry of #1 for rate_limited", rested, retried)
	}
	// Later requests skip the resting key.
	get(t, p.URL+"/v1/models")
	if got := p.up.keysSeen(); fmt.Sprint(got) != "[0 1 1]" {
		t.Errorf("upstream saw keys %v; want [0 1 1]", got)
	}
}

func TestKeyTransport_401KeyBenchedThenBack(t *testing.T) {
	var bad atomic.Bool
	bad.Store(true)
	const cooldown = time.Second // the shortest OXY_KEY_COOLDOWN accepted
	p := newPoolProxy(t, poolSetup{keys: 2, cooldown: cooldown}, func(w http.ResponseWriter, _ *http.Request, key, _ int) {
		if key == 0 && bad.Load() {
			vendorAnswer(w, 401, nil, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
			return
		}
		okAnswer(w, key)
	})
	res, body := get(t, p.URL+"/v1/models")
	if res.StatusCode != 200 || body != `{"served_by":1}` {
		t.Fatalf("got %d %s; want 200 from key #2", res.StatusCode, body)
	}
	benched := time.Now()
	bad.Store(false) // the key is fixed upstream, but the proxy must not try it before the cooldown
	for time.Since(benched) < cooldown-200*time.Millisecond {
		get(t, p.URL+"/v1/models")
		time.Sleep(20 * time.Millisecond)
	}
	for _, a := range p.up.seen()[2:] {
		if a.key == 0 && a.at.Sub(benched) < cooldown-200*time.Millisecond {
			t.Fatalf("key #1 used %v after it was benched for %v", a.at.Sub(benched), cooldown)
		}
	}
	time.Sleep(time.Until(benched.Add(cooldown + 50*time.Millisecond)))
	get(t, p.URL+"/v1/models")
	get(t, p.URL+"/v1/models")
	seen := p.up.seen()
	if last2 := seen[len(seen)-2:]; last2[0].key != 0 && last2[1].key != 0 {
		t.Errorf("after the cooldown key #1 was not used again (keys %v)", p.up.keysSeen())
	}
	if !strings.Contains(p.Log.String(), `"msg":"upstream key resting","route":"default","key":"#1","reason":"unauthorized","status":401`) {
		t.Errorf("no rest logged for #1:\n%s", p.Log)
	}
}

func TestKeyTransport_allKeysRestingGives429WithoutUpstreamCall(t *testing.T) {
	p := newPoolProxy(t, poolSetup{keys: 2}, func(w http.ResponseWriter, _ *http.Request, key, _ int) {
		after := map[int]string{0: "20", 1: "7"}[key]
		vendorAnswer(w, 429, map[string]string{"Retry-After": after}, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`)
	})
	// The first request meets both limits: the client gets the vendor's 429.
	res, body := get(t, p.URL+"/v1/chat/completions")
	if res.StatusCode != 429 || !strings.Contains(body, "Rate limit reached") || res.Header.Get("Retry-After") != "7" {
		t.Fatalf("first request: %d %q Retry-After %q; want the last key's own 429", res.StatusCode, body, res.Header.Get("Retry-After"))
	}
	calls := len(p.up.seen())
	if calls != 2 {
		t.Fatalf("upstream called %d times; want 2 (one per key)", calls)
	}
	res, err := http.Get(p.URL + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 429 {
		t.Fatalf("status %d; want 429", res.StatusCode)
	}
	ra, _ := strconv.Atoi(res.Header.Get("Retry-After"))
	if ra < 6 || ra > 7 {
		t.Errorf("Retry-After = %q; want 7 (key #2's return, the soonest)", res.Header.Get("Retry-After"))
	}
	if e := readAPIError(t, res); e.Error.Type != "rate_limit_exceeded" || *e.Error.Code != "upstream_keys_resting" {
		t.Errorf("error = %+v; want rate_limit_exceeded/upstream_keys_resting", e.Error)
	}
	if got := len(p.up.seen()); got != calls {
		t.Errorf("upstream called %d more times; want none while every key rests", got-calls)
	}
	waitFor(t, func() bool { return strings.Contains(p.Log.String(), `"rejected":"upstream_keys_resting"`) })
}

func TestKeyTransport_streamFailingAfterFirstEventIsNotRetried(t *testing.T) {
	p := newPoolProxy(t, poolSetup{keys: 2}, func(w http.ResponseWriter, _ *http.Request, key, _ int) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(20 * time.Millisecond)
		panic(http.ErrAbortHandler) // the upstream dies mid-stream
	})
	res, err := http.Post(p.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil {
		t.Errorf("stream ended cleanly (%q); want the client to see the failure", b)
	}
	if string(b) != "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n" {
		t.Errorf("client got %q; want the first event exactly once", b)
	}
	if got := p.up.keysSeen(); len(got) != 1 {
		t.Errorf("upstream saw %d attempts (%v); want 1: a started stream is never retried", len(got), got)
	}
}

func TestKeyTransport_bodyOverReplayLimitIsNotRetried(t *testing.T) {
	const limit = 1 << 10
	body := bytes.Repeat([]byte("x"), 4*limit)
	for _, tt := range []struct {
		name    string
		newBody func() io.Reader // a bytes.Reader has a known length; a plain reader is sent chunked
	}{
		{"known length", func() io.Reader { return bytes.NewReader(body) }},
		{"chunked", func() io.Reader { return io.MultiReader(bytes.NewReader(body)) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPoolProxy(t, poolSetup{keys: 2, maxBody: "1KiB"}, func(w http.ResponseWriter, _ *http.Request, key, _ int) {
				vendorAnswer(w, 503, nil, `{"error":{"message":"overloaded","type":"server_error"}}`)
			})
			res, err := http.Post(p.URL+"/v1/files", "application/octet-stream", tt.newBody())
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 503 {
				t.Errorf("status %d; want the upstream's 503", res.StatusCode)
			}
			seen := p.up.seen()
			if len(seen) != 1 {
				t.Fatalf("upstream saw %d attempts; want 1 (body over OXY_RETRY_MAX_BODY)", len(seen))
			}
			if !bytes.Equal(seen[0].body, body) {
				t.Errorf("upstream got %d bytes; want the whole %d-byte body", len(seen[0].body), len(body))
			}
			waitFor(t, func() bool { return strings.Contains(p.Log.String(), `"not_retried":"body_not_replayable"`) })
		})
	}
}

func TestKeyTransport_postBodyReplayedByteForByte(t *testing.T) {
	body := make([]byte, 300<<10)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		http2   bool
		newBody func() io.Reader
	}{
		{"http/1.1", false, func() io.Reader { return bytes.NewReader(body) }},
		{"http/1.1 chunked", false, func() io.Reader { return io.MultiReader(bytes.NewReader(body)) }},
		{"http/2", true, func() io.Reader { return bytes.NewReader(body) }},
		{"http/2 chunked", true, func() io.Reader { return io.MultiReader(bytes.NewReader(body)) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPoolProxy(t, poolSetup{keys: 2, http2: tt.http2}, func(w http.ResponseWriter, r *http.Request, key, _ int) {
				if tt.http2 && r.ProtoMajor != 2 {
					t.Errorf("upstream got %s; want HTTP/2", r.Proto)
				}
				if key == 0 {
					vendorAnswer(w, 500, nil, `{"error":{"message":"The server had an error","type":"server_error"}}`)
					return
				}
				okAnswer(w, key)
			})
			res, err := http.Post(p.URL+"/v1/audio/transcriptions", "application/octet-stream", tt.newBody())
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || string(got) != `{"served_by":1}` {
				t.Fatalf("got %d %s; want 200 from key #2", res.StatusCode, got)
			}
			seen := p.up.seen()
			if len(seen) != 2 {
				t.Fatalf("upstream saw %d attempts; want 2", len(seen))
			}
			want := sha256.Sum256(body)
			for i, a := range seen {
				if sha256.Sum256(a.body) != want {
					t.Errorf("attempt %d: upstream got %d bytes that differ from the client's %d", i+1, len(a.body), len(body))
				}
			}
		})
	}
}

// TestKeyTransport_firstAttemptStreamsTheBody checks that the pool keeps the
// proxy a pipe in both directions: the first attempt sends the body as it
// arrives, so an upstream may answer while the client still holds back the
// end of its body (as in platforms/chatgpt_reverse_proxy's duplex test), and the body is
// not first gathered in memory.
func TestKeyTransport_firstAttemptStreamsTheBody(t *testing.T) {
	body := make([]byte, 64<<10)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	gotBody := make(chan []byte, 1)
	// The upstream answers before it reads the body.
	p := newPoolProxy(t, poolSetup{keys: 2, raw: func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		_ = http.NewResponseController(w).Flush()
		b, _ := io.ReadAll(r.Body)
		gotBody <- b
		_, _ = io.WriteString(w, "data: second\n\n")
	}}, nil)
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/v1/audio/transcriptions", pr)
	req.ContentLength = int64(len(body))
	// The second half is written only once the first was taken: the
	// upstream answers before it reads anything, so the first event can come
	// first, and io.Pipe does not order writers that wait at once (see
	// platforms/chatgpt_reverse_proxy's duplex test).
	wroteHalf := make(chan error, 1)
	go func() {
		_, err := pw.Write(body[:len(body)/2])
		wroteHalf <- err
	}()
	resc := make(chan *http.Response, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
		}
		resc <- res
	}()
	var res *http.Response
	select {
	case res = <-resc:
	case <-time.After(10 * time.Second):
		_, _ = pw.Write(body[len(body)/2:])
		pw.Close()
		t.Fatal("no answer while the client held back half its body: the pool waits for the whole body")
	}
	if res == nil {
		t.FailNow()
	}
	defer res.Body.Close()
	first := make([]byte, len("data: first\n\n"))
	if _, err := io.ReadFull(res.Body, first); err != nil || string(first) != "data: first\n\n" {
		t.Fatalf("first event %q, %v", first, err)
	}
	select {
	case err := <-wroteHalf:
		if err != nil {
			t.Fatalf("writing the first half of the body: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pool did not take the first half of the body within 10s")
	}
	_, _ = pw.Write(body[len(body)/2:])
	pw.Close()
	rest, _ := io.ReadAll(res.Body)
	if string(rest) != "data: second\n\n" {
		t.Errorf("rest of the stream %q", rest)
	}
	if b := <-gotBody; !bytes.Equal(b, body) {
		t.Errorf("upstream got %d bytes; want the client's %d unchanged", len(b), len(body))
	}
}

func TestKeyTransport_concurrentRequestsNeverUseRestingKey(t *testing.T) {
	var limited atomic.Bool
	limited.Store(true)
	p := newPoolProxy(t, poolSetup{}, func(w http.ResponseWriter, _ *http.Request, key, _ int) {
		if key == 0 && limited.Load() {
			vendorAnswer(w, 429, map[string]string{"Retry-After": "3"}, `{"error":{"message":"Rate limit reached","type":"tokens","code":"rate_limit_exceeded"}}`)
			return
		}
		okAnswer(w, key)
	})
	if res, _ := get(t, p.URL+"/v1/models"); res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	rested := time.Now()
	limited.Store(false) // the upstream would take it again; the proxy must not, for 3s
	var wg sync.WaitGroup
	for range 60 {
		wg.Go(func() {
			res, err := http.Get(p.URL + "/v1/models")
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Errorf("status %d", res.StatusCode)
			}
		})
	}
	wg.Wait()
	for _, a := range p.up.seen()[1:] {
		if a.key == 0 && a.at.Sub(rested) < 3*time.Second {
			t.Fatalf("resting key #1 used %v into its 3s rest", a.at.Sub(rested))
		}
	}
	if n := strings.Count(p.Log.String(), `"msg":"upstream key resting"`); n != 1 {
		t.Errorf("rest logged %d times; want once", n)
	}
}

func TestKeyTransport_singleKeyRetriesTransientFaultsOnSameKey(t *testing.T) {
	for _, status := range []int{502, 503, 504} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			p := newPoolProxy(t, poolSetup{keys: 1}, func(w http.ResponseWriter, _ *http.Request, key, n int) {
				if n < 2 {
					vendorAnswer(w, status, nil, `{"error":{"message":"upstream trouble"}}`)
					return
				}
				okAnswer(w, key)
			})
			res, body := get(t, p.URL+"/v1/models")
			if res.StatusCode != 200 {
				t.Fatalf("got %d %s; want 200 after two retries on the only key", res.StatusCode, body)
			}
			if got := p.up.keysSeen(); fmt.Sprint(got) != "[0 0 0]" {
				t.Errorf("upstream saw keys %v; want [0 0 0]", got)
			}
		})
	}
	t.Run("500 and 529 are not retried on the same key", func(t *testing.T) {
		for _, status := range []int{500, 529} {
			p := newPoolProxy(t, poolSetup{keys: 1}, func(w http.ResponseWriter, _ *http.Request, key, n int) {
				vendorAnswer(w, status, nil, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
			})
			if res, _ := get(t, p.URL+"/v1/messages"); res.StatusCode != status {
				t.Errorf("status %d; want %d passed on", res.StatusCode, status)
			}
			if got := len(p.up.seen()); got != 1 {
				t.Errorf("%d: upstream saw %d attempts; want 1", status, got)
			}
		}
	})
}

// refusingDialer fails its first refusals dials with a real refused
// connection (a closed port on 127.0.0.1), then dials normally.
type refusingDialer struct {
	closed   string
	refusals atomic.Int32
	dialer   net.Dialer
}

func (d *refusingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.refusals.Add(-1) >= 0 {
		addr = d.closed
	}
	return d.dialer.DialContext(ctx, network, addr)
}

func TestKeyTransport_connectionFailureRetried(t *testing.T) {
	d := &refusingDialer{closed: closedPort(t)}
	d.refusals.Store(2)
	p := newPoolProxy(t, poolSetup{keys: 1, base: func(c Config) http.RoundTripper {
		tr := NewTransport(c)
		tr.DialContext = d.DialContext
		tr.DisableKeepAlives = true // every request dials
		return tr
	}}, func(w http.ResponseWriter, _ *http.Request, key, _ int) { okAnswer(w, key) })
	// The body was never read by the failed attempts: the retry reads it.
	const sent = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`
	res, err := http.Post(p.URL+"/v1/chat/completions", "application/json", io.MultiReader(strings.NewReader(sent)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("got %d %s; want 200 after two refused connects", res.StatusCode, body)
	}
	if seen := p.up.seen(); len(seen) != 1 || string(seen[0].body) != sent {
		t.Errorf("upstream saw %d requests (%v); want one with the client's body", len(seen), seen)
	}
	if !p.Log.WaitFor(time.Second, `"retries":2,"retry_reasons":"connect,connect"`) {
		t.Errorf("access log lacks the two connect retries:\n%s", p.Log)
	}
	if st := p.status(); !st[0].Available {
		t.Errorf("key #1 rests after a connection failure; want available (not the key's fault)")
	}

	// Every connect refused: the client gets the usual 502 after the retries.
	d.refusals.Store(100)
	res, _ = get(t, p.URL+"/v1/models")
	if res.StatusCode != 502 {
		t.Errorf("status %d; want 502", res.StatusCode)
	}
	if n := d.refusals.Load(); n != 100-3 {
		t.Errorf("%d connects; want 3 (1 + OXY_RETRIES)", 100-n)
	}
}

func TestKeyTransport_regionBlockIsPassedOnAndRestsNoKey(t *testing.T) {
	const region = `{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}`
	p := newPoolProxy(t, poolSetup{keys: 2}, func(w http.ResponseWriter, _ *http.Request, key, _ int) {
		vendorAnswer(w, 403, nil, region)
	})
	res, body := get(t, p.URL+"/v1/chat/completions")
	if res.StatusCode != 403 || body != region {
		t.Fatalf("got %d %q; want the vendor's 403 byte for byte", res.StatusCode, body)
	}
	if got := len(p.up.seen()); got != 1 {
		t.Errorf("upstream saw %d attempts; want 1 (no other key helps)", got)
	}
	for _, st := range p.status() {
		if !st.Available {
			t.Errorf("key %s rests after a region block", st.Key)
		}
	}
}

func TestKeyTransport_neverRetriesPastClientDeadline(t *testing.T) {
	p := newPoolProxy(t, poolSetup{keys: 2, backoff: 3 * time.Second,
		env: map[string]string{"OXY_REQUEST_TIMEOUT": "1s"}},
		func(w http.ResponseWriter, _ *http.Request, key, _ int) {
			vendorAnswer(w, 503, nil, `{"error":{"message":"unavailable"}}`)
		})
	start := time.Now()
	res, _ := get(t, p.URL+"/v1/models")
	if res.StatusCode != 503 {
		t.Errorf("status %d; want the upstream's 503 (a retry would outlive the deadline)", res.StatusCode)
	}
	if got := len(p.up.seen()); got != 1 {
		t.Errorf("upstream saw %d attempts; want 1", got)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("took %v; want the answer at once, not after a pointless wait", d)
	}
}

func TestKeyTransport_logNamesKeysByPositionOnly(t *testing.T) {
	p := newPoolProxy(t, poolSetup{keys: 2}, func(w http.ResponseWriter, _ *http.Request, key, _ int) {
		if key == 0 {
			vendorAnswer(w, 429, nil, `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`)
			return
		}
		okAnswer(w, key)
	})
	get(t, p.URL+"/v1/models")
	waitFor(t, func() bool { return strings.Contains(p.Log.String(), `"upstream_key":"#2"`) })
	logs := p.Log.String()
	for _, k := range testKeys {
		if strings.Contains(logs, k.Reveal()) || strings.Contains(logs, k.Reveal()[len(k)-6:]) {
			t.Fatalf("log shows a key's value:\n%s", logs)
		}
	}
	for _, want := range []string{
		`"msg":"upstream key resting","route":"default","key":"#1","reason":"quota","status":429,"for":600000000000`,
		`"msg":"retrying upstream request","route":"default","key":"#1","reason":"quota","attempt":1,"next_key":"#2"`,
		`"retries":1`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

func TestKeyTransport_eachRouteHasItsOwnPoolAndCredential(t *testing.T) {
	var mu sync.Mutex
	var seenKeys []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seenKeys = append(seenKeys, r.Header.Get("X-Api-Key")+"|"+r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get("X-Api-Key") == "sk-ant-first-000001" {
			vendorAnswer(w, 429, map[string]string{"Retry-After": "40"}, anthropicRate)
			return
		}
		okAnswer(w, 0)
	}))
	t.Cleanup(up.Close)
	e := map[string]string{
		"OXY_TARGET":                     up.URL,
		"OXY_ROUTES":                     "anthropic=" + up.URL,
		"OXY_UPSTREAM_API_KEY":           "sk-default-only-0001",
		"OXY_UPSTREAM_API_KEY_ANTHROPIC": "sk-ant-first-000001,sk-ant-second-00002",
		"OXY_AUTH_KEYS":                  testProxyKey,
	}
	cfg, err := FromEnv(testkit.Lookup(e), Options{Environ: testkit.Environ(e)})
	if err != nil {
		t.Fatal(err)
	}
	h := New(cfg, nil, nil, withRetryBackoff(time.Millisecond))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/anthropic/v1/messages", strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":8}`))
	req.Header.Set("X-Api-Key", testProxyKey)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d; want 200 from the route's second key", res.StatusCode)
	}
	mu.Lock()
	got := fmt.Sprint(seenKeys)
	mu.Unlock()
	if want := "[sk-ant-first-000001| sk-ant-second-00002|]"; got != want {
		t.Errorf("upstream saw x-api-key|authorization %s; want %s (the route's keys in its vendor's header, never the client's)", got, want)
	}
	var states []string
	for _, s := range h.KeyStates(context.Background()) {
		states = append(states, fmt.Sprintf("%s%s=%v", s.Route, s.Key, s.Available))
	}
	if want := "[default#1=true anthropic#1=false anthropic#2=true]"; fmt.Sprint(states) != want {
		t.Errorf("key states %v; want %s", states, want)
	}
}

// TestKeyTransport_allRestingAnsweredWithoutUpstream covers the transport's
// own check: keys that start resting after Handler.serve let the request
// through are still never used.
func TestKeyTransport_allRestingAnsweredWithoutUpstream(t *testing.T) {
	pool := NewKeyPool("default", testKeys[:2], KeyPoolOptions{})
	pool.rest(context.Background(), 0, 30*time.Second, reasonRateLimited, 429)
	pool.rest(context.Background(), 1, 9*time.Second, reasonRateLimited, 429)
	var called atomic.Int32
	base := roundTripFunc(func(*http.Request) (*http.Response, error) {
		called.Add(1)
		return nil, fmt.Errorf("must not be called")
	})
	tr := NewKeyTransport(base, pool, func(r *http.Request, k Secret) { r.Header.Set("Authorization", "Bearer "+k.Reveal()) }, RetryOptions{Retries: 2, MaxBody: 1 << 20})
	req := httptest.NewRequest(http.MethodPost, "http://upstream.example/v1/chat/completions", strings.NewReader("{}"))
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "9" || called.Load() != 0 {
		t.Errorf("got %d Retry-After %q, %d upstream calls; want 429, 9, none", res.StatusCode, res.Header.Get("Retry-After"), called.Load())
	}
	if e := readAPIError(t, res); *e.Error.Code != "upstream_keys_resting" {
		t.Errorf("code %q; want upstream_keys_resting", *e.Error.Code)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
