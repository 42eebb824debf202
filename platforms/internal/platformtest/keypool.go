package platformtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Key-pool tests (issue 13) through a platform's entrypoint: the same
// failover and all-keys-resting behaviour whatever carries the request.

// Real keys and the proxy key of the key-pool tests.
const (
	PoolKey1     = "sk-pool-first-0000000001"
	PoolKey2     = "sk-pool-second-000000002"
	PoolProxyKey = "pk-pool-client-0123456789"
)

// PoolEnv is the settings of a key-pool test in front of up: two real keys
// for the default route, and a proxy key for the client (every build accepts
// OXY_AUTH_KEYS; Aliyun FC refuses OXY_ALLOW_CIDRS).
func PoolEnv(up *KeyedUpstream) map[string]string {
	return map[string]string{
		"OXY_TARGET":           up.URL,
		"OXY_UPSTREAM_API_KEY": PoolKey1 + "," + PoolKey2,
		"OXY_AUTH_KEYS":        PoolProxyKey,
	}
}

// KeyedUpstream is a mock AI API that tells the real keys apart by the
// Authorization header: a key told to refuse answers 429 with its
// Retry-After, every other key 200 naming itself.
type KeyedUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	refuse map[string]string // key -> Retry-After
	seen   []string          // the key of each request, in order
	bodies []string
}

// NewKeyedUpstream starts a KeyedUpstream on 127.0.0.1; it is closed with the test.
func NewKeyedUpstream(t *testing.T) *KeyedUpstream {
	t.Helper()
	u := &KeyedUpstream{refuse: map[string]string{}}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Server.Close)
	return u
}

// Refuse makes key answer 429 with Retry-After: seconds.
func (u *KeyedUpstream) Refuse(key string, seconds int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.refuse[key] = strconv.Itoa(seconds)
}

// Keys returns the key of every request received, in order.
func (u *KeyedUpstream) Keys() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

func (u *KeyedUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	u.mu.Lock()
	u.seen = append(u.seen, key)
	u.bodies = append(u.bodies, string(body))
	after, refused := u.refuse[key]
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if refused {
		w.Header().Set("Retry-After", after)
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}`)
		return
	}
	_, _ = io.WriteString(w, `{"object":"chat.completion","served_by":"`+key+`"}`)
}

// PoolAnswer is what the client got through the platform.
type PoolAnswer struct {
	Status int
	Header http.Header
	Body   string
}

// PoolRequestBody is the chat request the key-pool checks send.
const PoolRequestBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`

// CheckKeyPool proves the key pool through one platform. send carries a
// POST /v1/chat/completions with body and "Authorization: Bearer
// PoolProxyKey" the platform's way (HTTP, an event, an RPC call) to a proxy
// started with PoolEnv(up), and returns what the client got.
//
//  1. Key #1 answers 429: the request is retried with key #2, which answers
//     200, and the body is sent again byte for byte.
//  2. Key #2 answers 429 too: the client gets the vendor's 429.
//  3. Both keys rest: the proxy answers 429 itself, with Retry-After set to
//     the soonest return (key #2's 20 s, not key #1's 40 s), without
//     calling the upstream.
func CheckKeyPool(t *testing.T, up *KeyedUpstream, send func(t *testing.T, body string) PoolAnswer) {
	t.Helper()
	up.Refuse(PoolKey1, 40)
	a := send(t, PoolRequestBody)
	if a.Status != http.StatusOK || !strings.Contains(a.Body, `"served_by":"`+PoolKey2+`"`) {
		t.Fatalf("1: got %d %s; want 200 from the second key", a.Status, a.Body)
	}
	if got := up.Keys(); len(got) != 2 || got[0] != PoolKey1 || got[1] != PoolKey2 {
		t.Fatalf("1: upstream saw %d requests (keys in order %v); want key #1 then key #2", len(got), redact(got))
	}
	up.mu.Lock()
	bodies := append([]string(nil), up.bodies...)
	up.mu.Unlock()
	for i, b := range bodies {
		if b != PoolRequestBody {
			t.Errorf("1: attempt %d sent body %q; want the client's %q", i+1, b, PoolRequestBody)
		}
	}

	up.Refuse(PoolKey2, 20)
	a = send(t, PoolRequestBody)
	if a.Status != http.StatusTooManyRequests || !strings.Contains(a.Body, "Rate limit reached") {
		t.Fatalf("2: got %d %s; want the vendor's 429", a.Status, a.Body)
	}
	calls := len(up.Keys())

	a = send(t, PoolRequestBody)
	var e struct{ Error struct{ Type, Code string } }
	if a.Status != http.StatusTooManyRequests || json.Unmarshal([]byte(a.Body), &e) != nil || e.Error.Code != "upstream_keys_resting" {
		t.Fatalf("3: got %d %s; want the proxy's 429 upstream_keys_resting", a.Status, a.Body)
	}
	if ra, err := strconv.Atoi(headerValue(a.Header, "Retry-After")); err != nil || ra < 18 || ra > 20 {
		t.Errorf("3: Retry-After = %q; want 20 (the soonest key back)", headerValue(a.Header, "Retry-After"))
	}
	if n := len(up.Keys()); n != calls {
		t.Errorf("3: upstream called %d more times; want none while every key rests", n-calls)
	}
}

// headerValue reads a header from a map that may not be canonical (event replies).
func headerValue(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// redact names the test's keys by position, so a failure message shows no key.
func redact(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		switch k {
		case PoolKey1:
			out[i] = "#1"
		case PoolKey2:
			out[i] = "#2"
		default:
			out[i] = "other"
		}
	}
	return out
}

// PoolEnvList is PoolEnv in KEY=value form, for Start.
func PoolEnvList(up *KeyedUpstream) []string { return Environ(PoolEnv(up)) }

// SendHTTP returns CheckKeyPool's send for a platform served over HTTP at
// base, with the platform's own request headers extra added.
func SendHTTP(base string, extra http.Header) func(t *testing.T, body string) PoolAnswer {
	return func(t *testing.T, body string) PoolAnswer {
		t.Helper()
		h := http.Header{"Authorization": {"Bearer " + PoolProxyKey}, "Content-Type": {"application/json"}}
		for k, v := range extra {
			h[k] = v
		}
		res, b := Do(t, http.MethodPost, base+"/v1/chat/completions", h, body)
		return PoolAnswer{Status: res.StatusCode, Header: res.Header, Body: b}
	}
}
