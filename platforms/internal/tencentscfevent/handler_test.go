package tencentscfevent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

const getModels = `{"httpMethod":"GET","path":"/v1/models"}`

func invokeReply(t *testing.T, h *Handler, ctx context.Context, payload string) Reply {
	t.Helper()
	b, err := h.Invoke(ctx, []byte(payload))
	if err != nil {
		t.Fatalf("Invoke returned error %v; want a reply", err)
	}
	var r Reply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("reply %q: %v", b, err)
	}
	return r
}

func errorCode(t *testing.T, r Reply) string {
	t.Helper()
	var e struct{ Error struct{ Code string } }
	if err := json.Unmarshal([]byte(r.Body), &e); err != nil {
		t.Fatalf("reply body %q: %v", r.Body, err)
	}
	return e.Error.Code
}

// newProxy returns the core proxy for target, as the entrypoint builds it.
func newProxy(t *testing.T, target string, logs io.Writer) *Handler {
	t.Helper()
	cfg, err := core.FromEnv(func(name string) (string, bool) {
		if name == "OXY_TARGET" {
			return target, true
		}
		return "", false
	}, core.Options{Defaults: Defaults()})
	if err != nil {
		t.Fatal(err)
	}
	logger := core.NewLogger(cfg, logs)
	return NewHandler(core.New(cfg, logger, nil), logger)
}

func TestHandler_recoversPanics(t *testing.T) {
	tests := []struct {
		name   string
		panic  any
		status int
		code   string
	}{
		{"bug", "boom", 500, "internal_error"},
		{"abort", http.ErrAbortHandler, 502, "upstream_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte("partial"))
				panic(tt.panic)
			}), slog.New(slog.NewTextHandler(&logs, nil)))
			r := invokeReply(t, h, context.Background(), getModels)
			if r.StatusCode != tt.status || errorCode(t, r) != tt.code {
				t.Errorf("reply %d %s; want %d %s", r.StatusCode, r.Body, tt.status, tt.code)
			}
		})
	}
}

func TestHandler_noResponseIsAnError(t *testing.T) {
	h := NewHandler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), slog.New(slog.DiscardHandler))
	if r := invokeReply(t, h, context.Background(), getModels); r.StatusCode != 500 {
		t.Errorf("reply status %d; want 500", r.StatusCode)
	}
}

// The limit counts the encoded reply: a body under it can still grow past it
// once base64-encoded.
func TestHandler_encodedReplyOverLimit(t *testing.T) {
	h := NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(bytes.Repeat([]byte{0xff}, 900))
	}), slog.New(slog.DiscardHandler))
	h.limit = 1000
	r := invokeReply(t, h, context.Background(), getModels)
	if r.StatusCode != 502 || errorCode(t, r) != "response_too_large" {
		t.Errorf("reply %d %s; want 502 response_too_large", r.StatusCode, r.Body)
	}
}

// When the invocation's deadline ends while the upstream is still sending,
// the reply is a 504, not the part that arrived.
func TestHandler_deadlineMidBody(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer upstream.Close()
	h := newProxy(t, upstream.URL, io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r := invokeReply(t, h, ctx, getModels)
	if r.StatusCode != 504 || errorCode(t, r) != "upstream_timeout" {
		t.Errorf("reply %d %s; want 504 upstream_timeout", r.StatusCode, r.Body)
	}
}

// Concurrent invocations (the runtime may call Invoke in parallel) share the
// handler safely; run with -race.
func TestHandler_concurrentInvocations(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	defer upstream.Close()
	h := newProxy(t, upstream.URL, io.Discard)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			path := fmt.Sprintf("/v1/item/%d", i)
			r := invokeReply(t, h, context.Background(), fmt.Sprintf(`{"httpMethod":"GET","path":%q}`, path))
			if want := fmt.Sprintf(`{"path":%q}`, path); r.StatusCode != 200 || r.Body != want {
				t.Errorf("reply %d %q; want 200 %q", r.StatusCode, r.Body, want)
			}
		})
	}
	wg.Wait()
}

// With OXY_FORWARD_CLIENT_IP on, the client address comes from the event.
func TestHandler_forwardClientIP(t *testing.T) {
	got := make(chan string, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("X-Forwarded-For")
	}))
	defer upstream.Close()
	cfg, err := core.FromEnv(func(name string) (string, bool) {
		switch name {
		case "OXY_TARGET":
			return upstream.URL, true
		case "OXY_FORWARD_CLIENT_IP":
			return "true", true
		}
		return "", false
	}, core.Options{Defaults: Defaults()})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(core.New(cfg, nil, nil), slog.New(slog.DiscardHandler))
	invokeReply(t, h, context.Background(),
		`{"httpMethod":"GET","path":"/","headers":{"X-Forwarded-For":"6.6.6.6"},"requestContext":{"sourceIp":"203.0.113.7"}}`)
	if xff := <-got; xff != "203.0.113.7" {
		t.Errorf("upstream X-Forwarded-For %q; want the event's sourceIp 203.0.113.7", xff)
	}
}

func TestDefaults_stripGatewayHeaders(t *testing.T) {
	cfg, err := core.FromEnv(func(string) (string, bool) { return "", false }, core.Options{Defaults: Defaults()})
	if err != nil {
		t.Fatal(err)
	}
	p := core.NewHeaderPolicy(cfg)
	for _, name := range []string{"X-Api-Requestid", "x-client-proto", "X-Client-Proto-Ver", "endpoint-timeout", "X-Scf-Uin"} {
		if !p.Stripped(name) {
			t.Errorf("%s is forwarded; want it stripped", name)
		}
	}
	if p.Stripped("Authorization") {
		t.Errorf("Authorization is stripped; want it forwarded")
	}
}
