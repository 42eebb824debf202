package awslambda

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestBuffered_request(t *testing.T) {
	t.Parallel()
	rc, up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "req_123")
		w.Header().Set("Alt-Svc", `h3=":443"`)
		w.Header().Add("Set-Cookie", "__cf_bm=one; Path=/")
		w.Header().Add("Set-Cookie", "_cfuvid=two; Path=/")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"chatcmpl-1","note":"<b>&"}`)
	})
	res := invokeBuffered(t, context.Background(), up.URL, fixture(t, "chat-completions.json"), nil)
	checkChatRequest(t, rc.only(t))
	if res.StatusCode != http.StatusCreated || res.IsBase64Encoded || res.Body != `{"id":"chatcmpl-1","note":"<b>&"}` {
		t.Errorf("reply = %d base64=%v %q; want 201, plain upstream body", res.StatusCode, res.IsBase64Encoded, res.Body)
	}
	if got := res.Headers["X-Request-Id"]; got != "req_123" {
		t.Errorf("reply X-Request-Id = %q; want req_123", got)
	}
	if _, ok := res.Headers["Alt-Svc"]; ok {
		t.Error("reply kept Alt-Svc")
	}
	if want := []string{"__cf_bm=one; Path=/", "_cfuvid=two; Path=/"}; !equal(res.Cookies, want) {
		t.Errorf("reply cookies = %q; want %q", res.Cookies, want)
	}
}

// aws-lambda-go-api-proxy's adapter put each of cookies[] in its own Cookie
// header on top of the cookie header; the handler must see them once, and no
// header of the adapter's own.
func TestBuffered_cookiesOnce(t *testing.T) {
	t.Parallel()
	var got http.Header
	b := NewBuffered(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}), testLogger(t))
	ev := loadURLEvent(t, "chat-completions.json")
	if _, err := b.Invoke(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if want := []string{"session=abc123; theme=dark"}; !equal(got["Cookie"], want) {
		t.Errorf("handler Cookie = %q; want %q", got["Cookie"], want)
	}
	if v, ok := got["X-Golambdaproxy-Apigw-Context"]; ok && len(v) != 1 {
		t.Errorf("adapter added its own context header: %q", v)
	}
}

// aws-lambda-go's own function URL test event: repeated query parameters,
// a header with a comma, cookies[] without a cookie header.
func TestBuffered_awsLambdaGoEvent(t *testing.T) {
	t.Parallel()
	rc, up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	res := invokeBuffered(t, context.Background(), up.URL, fixture(t, "aws-lambda-go-lambda-urls-request.json"), nil)
	got := rc.only(t)
	if got.method != "POST" || got.uri != "/my/path?parameter1=value1&parameter1=value2&parameter2=value" {
		t.Errorf("upstream got %s %s", got.method, got.uri)
	}
	if v := got.header["Header2"]; !equal(v, []string{"value1,value2"}) {
		t.Errorf("upstream Header2 = %q; want one value1,value2", v)
	}
	if string(got.body) != "Hello from client!" || res.StatusCode != 200 || res.Body != "ok" {
		t.Errorf("body %q, reply %d %q", got.body, res.StatusCode, res.Body)
	}
}

func TestBuffered_bodyBase64(t *testing.T) {
	t.Parallel()
	rc, up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/mpeg")
		_, _ = w.Write(binaryBody())
	})
	res := invokeBuffered(t, context.Background(), up.URL, fixture(t, "binary-body-base64.json"), nil)
	if got := rc.only(t); got.method != "PUT" || !bytes.Equal(got.body, binaryBody()) {
		t.Errorf("upstream got %s body %q; want PUT with the decoded body", got.method, got.body)
	}
	body, err := base64.StdEncoding.DecodeString(res.Body)
	if !res.IsBase64Encoded || err != nil || !bytes.Equal(body, binaryBody()) {
		t.Errorf("reply base64=%v body %q; want the binary body base64-encoded", res.IsBase64Encoded, res.Body)
	}
}

func TestBuffered_badBase64(t *testing.T) {
	t.Parallel()
	rc, up := upstream(t, nil)
	event := bytes.Replace(fixture(t, "binary-body-base64.json"), []byte(`"body": "`), []byte(`"body": "!!`), 1)
	res := invokeBuffered(t, context.Background(), up.URL, event, nil)
	if e := apiError(t, []byte(res.Body)); res.StatusCode != 400 || e.Code != "invalid_event" {
		t.Errorf("reply %d %+v; want 400 invalid_event", res.StatusCode, e)
	}
	if len(rc.reqs) != 0 {
		t.Error("upstream was called")
	}
}

func TestBuffered_upstreamStatusAndErrors(t *testing.T) {
	t.Parallel()
	_, limited := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"message":"slow down"}}`)
	})
	res := invokeBuffered(t, context.Background(), limited.URL, fixture(t, "chat-completions.json"), nil)
	if res.StatusCode != 429 || res.Body != `{"error":{"message":"slow down"}}` {
		t.Errorf("reply %d %q; want the upstream's 429", res.StatusCode, res.Body)
	}

	_, gone := upstream(t, nil)
	gone.Close()
	res = invokeBuffered(t, context.Background(), gone.URL, fixture(t, "chat-completions.json"), nil)
	if e := apiError(t, []byte(res.Body)); res.StatusCode != 502 || e.Code != "upstream_unreachable" {
		t.Errorf("reply %d %+v; want 502 upstream_unreachable", res.StatusCode, e)
	}
}

// An upstream that dies mid-body must not turn into a clean, truncated 200.
func TestBuffered_upstreamAbortedMidBody(t *testing.T) {
	t.Parallel()
	_, up := upstream(t, abortMidBody)
	res := invokeBuffered(t, context.Background(), up.URL, fixture(t, "chat-completions.json"), nil)
	if e := apiError(t, []byte(res.Body)); res.StatusCode != 502 || e.Code != "upstream_error" {
		t.Errorf("reply %d %+v; want 502 upstream_error", res.StatusCode, e)
	}
}

func TestBuffered_responseTooLarge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply http.HandlerFunc
	}{
		// Stopped while copying: never buffered whole.
		{"raw body over 6 MB", func(w http.ResponseWriter, r *http.Request) {
			chunk := bytes.Repeat([]byte("a"), 64<<10)
			for range 7 << 4 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}},
		// 5 MB of binary is 6.7 MB once base64-encoded in the reply.
		{"base64 reply over 6 MB", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write(bytes.Repeat([]byte{0xff}, 5<<20))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, up := upstream(t, tt.reply)
			res := invokeBuffered(t, context.Background(), up.URL, fixture(t, "chat-completions.json"), nil)
			if e := apiError(t, []byte(res.Body)); res.StatusCode != 502 || e.Code != "response_too_large" {
				t.Errorf("reply %d %+v; want 502 response_too_large", res.StatusCode, e)
			}
		})
	}
}

func TestBuffered_deadline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply func(t *testing.T) http.HandlerFunc
	}{
		{"before the response headers", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { hangUntilDone(t, r) }
		}},
		{"mid-body", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = io.WriteString(w, "data: one\n\n")
				http.NewResponseController(w).Flush()
				hangUntilDone(t, r)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, up := upstream(t, tt.reply(t))
			ctx := deadlineCtx(t, 3*time.Second)
			res := invokeBuffered(t, ctx, up.URL, fixture(t, "chat-completions.json"), nil)
			if ctx.Err() != nil {
				t.Error("answered after the invocation deadline; want before it")
			}
			if e := apiError(t, []byte(res.Body)); res.StatusCode != 504 || e.Code != "upstream_timeout" {
				t.Errorf("reply %d %+v; want 504 upstream_timeout", res.StatusCode, e)
			}
		})
	}
}

func TestBuffered_panicRecovered(t *testing.T) {
	t.Parallel()
	b := NewBuffered(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("boom")
	}), testLogger(t))
	ev := loadURLEvent(t, "chat-completions.json")
	res, err := b.Invoke(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if e := apiError(t, []byte(res.Body)); res.StatusCode != 500 || e.Code != "internal_error" {
		t.Errorf("reply %d %+v; want 500 internal_error", res.StatusCode, e)
	}
}

func TestBuffered_forwardClientIP(t *testing.T) {
	t.Parallel()
	rc, up := upstream(t, nil)
	invokeBuffered(t, context.Background(), up.URL, fixture(t, "chat-completions.json"), env{"OXY_FORWARD_CLIENT_IP": "true"})
	// sourceIp, not the client-supplied x-forwarded-for of the event.
	if got := rc.only(t).header["X-Forwarded-For"]; !equal(got, []string{"203.0.113.7"}) || strings.Contains(got[0], ",") {
		t.Errorf("upstream X-Forwarded-For = %q; want [203.0.113.7]", got)
	}
}

func trailerUpstream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Trailer", "X-Usage")
	_, _ = io.WriteString(w, "ok")
	w.Header().Set("X-Usage", "42")
}

// A function URL reply has no trailers: neither the announcement nor the
// reverse proxy's "Trailer:" entries may appear as headers.
func TestBuffered_noTrailerHeaders(t *testing.T) {
	t.Parallel()
	_, up := upstream(t, trailerUpstream)
	res := invokeBuffered(t, context.Background(), up.URL, fixture(t, "chat-completions.json"), nil)
	for k := range res.Headers {
		if isTrailer(k) {
			t.Errorf("reply header %s: %q", k, res.Headers[k])
		}
	}
	if res.Body != "ok" {
		t.Errorf("body %q; want ok", res.Body)
	}
}

// An event whose URL cannot be parsed gets a 400, and the log never quotes
// the URL: its query can carry a key.
func TestBuffered_badURLNotLogged(t *testing.T) {
	t.Parallel()
	var log bytes.Buffer
	b := NewBuffered(http.NotFoundHandler(), slog.New(slog.NewTextHandler(&log, nil)))
	ev := loadURLEvent(t, "chat-completions.json")
	ev.RawPath, ev.RawQueryString = "/v1/%zz", "key=sk-secret"
	res, err := b.Invoke(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if e := apiError(t, []byte(res.Body)); res.StatusCode != 400 || e.Code != "invalid_event" {
		t.Errorf("reply %d %+v; want 400 invalid_event", res.StatusCode, e)
	}
	if strings.Contains(log.String(), "sk-secret") || !strings.Contains(log.String(), "invalid function URL event") {
		t.Errorf("log %q; want the refusal without the query", log.String())
	}
}
