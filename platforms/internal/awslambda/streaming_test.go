package awslambda

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

// invokeStreaming runs a fixture through the streaming handler around the
// real proxy and returns the reply stream as the runtime would read it.
func invokeStreaming(t *testing.T, ctx context.Context, target string, ev *events.LambdaFunctionURLRequest) *bufio.Reader {
	t.Helper()
	proxy, logger := proxyFor(t, target, env{InvokeModeSetting: ModeResponseStream})
	res, err := NewStreaming(proxy, logger).Invoke(ctx, ev)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	t.Cleanup(func() { _ = res.Close() })
	return bufio.NewReader(res)
}

func TestStreaming_firstEventWhileUpstreamBlocked(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	rc, up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Set-Cookie", "__cf_bm=one; Path=/")
		_, _ = io.WriteString(w, "data: {\"delta\":\"Hel\"}\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: {\"delta\":\"lo\"}\n\ndata: [DONE]\n\n")
	})
	r := invokeStreaming(t, context.Background(), up.URL, loadURLEvent(t, "chat-completions.json"))
	p := platformtest.ReadLambdaPrelude(t, r)
	if p.StatusCode != 200 || p.Headers["Content-Type"] != "text/event-stream" {
		t.Errorf("prelude = %+v; want 200 text/event-stream", p)
	}
	if want := []string{"__cf_bm=one; Path=/"}; !equal(p.Cookies, want) {
		t.Errorf("prelude cookies = %q; want %q", p.Cookies, want)
	}
	// The upstream is blocked: this event can only arrive if it was streamed.
	first, err := r.ReadString('\n')
	if err != nil || first != "data: {\"delta\":\"Hel\"}\n" {
		t.Fatalf("first line = %q, %v; want the first event while the upstream is blocked", first, err)
	}
	close(release)
	rest, err := io.ReadAll(r)
	if err != nil || string(rest) != "\ndata: {\"delta\":\"lo\"}\n\ndata: [DONE]\n\n" {
		t.Errorf("rest = %q, %v", rest, err)
	}
	checkChatRequest(t, rc.only(t))
}

func TestStreaming_cookiesOnce(t *testing.T) {
	t.Parallel()
	var got http.Header
	s := NewStreaming(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}), testLogger(t))
	res, err := s.Invoke(context.Background(), loadURLEvent(t, "chat-completions.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(res)
	if want := []string{"session=abc123; theme=dark"}; !equal(got["Cookie"], want) {
		t.Errorf("handler Cookie = %q; want %q", got["Cookie"], want)
	}
	// cookies[] without a cookie header (lambdaurl.Wrap drops these).
	ev := loadURLEvent(t, "aws-lambda-go-lambda-urls-request.json")
	res, err = s.Invoke(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(res)
	if want := []string{"cookie1; cookie2"}; !equal(got["Cookie"], want) {
		t.Errorf("handler Cookie = %q; want %q", got["Cookie"], want)
	}
}

func TestStreaming_bodyBase64(t *testing.T) {
	t.Parallel()
	rc, up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/mpeg")
		_, _ = w.Write(binaryBody())
	})
	r := invokeStreaming(t, context.Background(), up.URL, loadURLEvent(t, "binary-body-base64.json"))
	if p := platformtest.ReadLambdaPrelude(t, r); p.StatusCode != 200 || p.Headers["Content-Type"] != "audio/mpeg" {
		t.Errorf("prelude = %+v", p)
	}
	body, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(body, binaryBody()) {
		t.Errorf("streamed body = %q, %v; want the raw binary body", body, err)
	}
	if got := rc.only(t); got.method != "PUT" || !bytes.Equal(got.body, binaryBody()) {
		t.Errorf("upstream got %s %q; want PUT with the decoded body", got.method, got.body)
	}
}

func TestStreaming_badBase64(t *testing.T) {
	t.Parallel()
	ev := loadURLEvent(t, "binary-body-base64.json")
	ev.Body = "!!" + ev.Body
	r := invokeStreaming(t, context.Background(), "http://127.0.0.1:1", ev)
	p := platformtest.ReadLambdaPrelude(t, r)
	body, _ := io.ReadAll(r)
	if e := apiError(t, body); p.StatusCode != 400 || e.Code != "invalid_event" {
		t.Errorf("reply %d %+v; want 400 invalid_event", p.StatusCode, e)
	}
}

// 103 Early Hints cannot be relayed; the prelude must carry the final status.
func TestStreaming_informationalSkipped(t *testing.T) {
	t.Parallel()
	_, up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusAccepted)
	})
	r := invokeStreaming(t, context.Background(), up.URL, loadURLEvent(t, "chat-completions.json"))
	if p := platformtest.ReadLambdaPrelude(t, r); p.StatusCode != http.StatusAccepted {
		t.Errorf("prelude status = %d; want 202", p.StatusCode)
	}
}

func TestStreaming_upstreamErrors(t *testing.T) {
	t.Parallel()
	_, gone := upstream(t, nil)
	gone.Close()
	r := invokeStreaming(t, context.Background(), gone.URL, loadURLEvent(t, "chat-completions.json"))
	p := platformtest.ReadLambdaPrelude(t, r)
	body, _ := io.ReadAll(r)
	if e := apiError(t, body); p.StatusCode != 502 || e.Code != "upstream_unreachable" {
		t.Errorf("reply %d %+v; want 502 upstream_unreachable", p.StatusCode, e)
	}
}

// An upstream that dies mid-body ends the stream with an error, which the
// runtime reports to Lambda as a function error: never a clean end.
func TestStreaming_upstreamAbortedMidBody(t *testing.T) {
	t.Parallel()
	_, up := upstream(t, abortMidBody)
	r := invokeStreaming(t, context.Background(), up.URL, loadURLEvent(t, "chat-completions.json"))
	platformtest.ReadLambdaPrelude(t, r)
	if body, err := io.ReadAll(r); !errors.Is(err, errStreamAborted) {
		t.Errorf("body %q ended with %v; want %v", body, err, errStreamAborted)
	}
}

func TestStreaming_deadline(t *testing.T) {
	t.Parallel()
	t.Run("before the response headers", func(t *testing.T) {
		t.Parallel()
		_, up := upstream(t, func(w http.ResponseWriter, r *http.Request) { hangUntilDone(t, r) })
		ctx := deadlineCtx(t, 3*time.Second)
		r := invokeStreaming(t, ctx, up.URL, loadURLEvent(t, "chat-completions.json"))
		p := platformtest.ReadLambdaPrelude(t, r)
		body, _ := io.ReadAll(r)
		if ctx.Err() != nil {
			t.Error("answered after the invocation deadline; want before it")
		}
		if e := apiError(t, body); p.StatusCode != 504 || e.Code != "upstream_timeout" {
			t.Errorf("reply %d %+v; want 504 upstream_timeout", p.StatusCode, e)
		}
	})
	t.Run("mid-body", func(t *testing.T) {
		t.Parallel()
		_, up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: one\n\n")
			http.NewResponseController(w).Flush()
			hangUntilDone(t, r)
		})
		ctx := deadlineCtx(t, 3*time.Second)
		r := invokeStreaming(t, ctx, up.URL, loadURLEvent(t, "chat-completions.json"))
		platformtest.ReadLambdaPrelude(t, r)
		body, err := io.ReadAll(r)
		if ctx.Err() != nil {
			t.Error("stream ended after the invocation deadline; want before it")
		}
		if string(body) != "data: one\n\n" || !errors.Is(err, errStreamAborted) {
			t.Errorf("body %q ended with %v; want the first event, then %v", body, err, errStreamAborted)
		}
	})
}

func TestStreaming_panicRecovered(t *testing.T) {
	t.Parallel()
	t.Run("before writing", func(t *testing.T) {
		s := NewStreaming(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip") // must not leak into the error reply
			panic("boom")
		}), testLogger(t))
		res, err := s.Invoke(context.Background(), loadURLEvent(t, "chat-completions.json"))
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(res)
		p := platformtest.ReadLambdaPrelude(t, r)
		body, _ := io.ReadAll(r)
		if e := apiError(t, body); p.StatusCode != 500 || e.Code != "internal_error" || p.Headers["Content-Encoding"] != "" {
			t.Errorf("reply %+v %+v; want 500 internal_error without Content-Encoding", p, e)
		}
	})
	t.Run("mid-body", func(t *testing.T) {
		s := NewStreaming(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "data: one\n\n")
			panic("boom")
		}), testLogger(t))
		res, err := s.Invoke(context.Background(), loadURLEvent(t, "chat-completions.json"))
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(res)
		platformtest.ReadLambdaPrelude(t, r)
		if body, err := io.ReadAll(r); string(body) != "data: one\n\n" || !errors.Is(err, errStreamAborted) {
			t.Errorf("body %q ended with %v; want the event, then %v", body, err, errStreamAborted)
		}
	})
}

func TestSetup_invokeMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode    string
		set     bool
		wantErr string
		stream  bool
	}{
		{set: false, stream: false},
		{mode: "buffered", set: true, stream: false},
		{mode: "response_stream", set: true, stream: true},
		{mode: "RESPONSE_STREAM", set: true, stream: true},
		{mode: "stream", set: true, wantErr: `OXY_LAMBDA_INVOKE_MODE="stream": must be buffered or response_stream`},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			_, up := upstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
			e := env{"OXY_TARGET": up.URL}
			if tt.set {
				e[InvokeModeSetting] = tt.mode
			}
			h, err := setup(nil, e, io.Discard, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Setup error = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out, err := h.Invoke(context.Background(), fixture(t, "aws-lambda-go-lambda-urls-request.json"))
			if err != nil {
				t.Fatal(err)
			}
			streamed := bytes.HasSuffix(out, []byte("\x00\x00\x00\x00\x00\x00\x00\x00ok"))
			if streamed != tt.stream {
				t.Errorf("reply %q; streamed = %v, want %v", out, streamed, tt.stream)
			}
		})
	}
}

func TestSetup_flagsAndUnknownSettings(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	if _, err := setup([]string{"-version"}, env{}, &stdout, io.Discard); err == nil ||
		!strings.HasPrefix(stdout.String(), "chatgpt_reverse_proxy ") {
		t.Errorf("-version: err %v, output %q", err, stdout.String())
	}
	stdout.Reset()
	if _, err := setup([]string{"-h"}, env{}, &stdout, io.Discard); err == nil ||
		!strings.Contains(stdout.String(), InvokeModeSetting) {
		t.Errorf("-h: err %v, output %q", err, stdout.String())
	}
	e := env{"OXY_LAMBDA_INVOKE_MOD": "buffered"}
	if _, err := setup(nil, e, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "did you mean OXY_LAMBDA_INVOKE_MODE") {
		t.Errorf("misspelt setting: err %v", err)
	}
}

func TestStreaming_noTrailerHeaders(t *testing.T) {
	t.Parallel()
	_, up := upstream(t, trailerUpstream)
	r := invokeStreaming(t, context.Background(), up.URL, loadURLEvent(t, "chat-completions.json"))
	p := platformtest.ReadLambdaPrelude(t, r)
	for k := range p.Headers {
		if isTrailer(k) {
			t.Errorf("prelude header %s: %q", k, p.Headers[k])
		}
	}
	if body, err := io.ReadAll(r); string(body) != "ok" || err != nil {
		t.Errorf("body %q, %v; want ok", body, err)
	}
}

func TestStreaming_badURLNotLogged(t *testing.T) {
	t.Parallel()
	var log bytes.Buffer
	s := NewStreaming(http.NotFoundHandler(), slog.New(slog.NewTextHandler(&log, nil)))
	ev := loadURLEvent(t, "chat-completions.json")
	ev.RawPath, ev.RawQueryString = "/v1/%zz", "key=sk-secret"
	res, err := s.Invoke(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(res)
	p := platformtest.ReadLambdaPrelude(t, r)
	body, _ := io.ReadAll(r)
	if e := apiError(t, body); p.StatusCode != 400 || e.Code != "invalid_event" {
		t.Errorf("reply %d %+v; want 400 invalid_event", p.StatusCode, e)
	}
	if strings.Contains(log.String(), "sk-secret") || !strings.Contains(log.String(), "invalid function URL event") {
		t.Errorf("log %q; want the refusal without the query", log.String())
	}
}
