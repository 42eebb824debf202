package awslambda

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

// TestKeyPool_bothInvokeModes runs the key-pool checks through the Lambda
// build's start-up and handler (as main hands it to the runtime), with
// function URL events, in both invoke modes.
func TestKeyPool_bothInvokeModes(t *testing.T) {
	for _, mode := range []string{ModeBuffered, ModeResponseStream} {
		t.Run(mode, func(t *testing.T) {
			up := platformtest.NewKeyedUpstream(t)
			e := env(platformtest.PoolEnv(up))
			e[InvokeModeSetting] = mode
			h, err := setup(nil, e, io.Discard, testLog{t})
			if err != nil {
				t.Fatal(err)
			}
			platformtest.CheckKeyPool(t, up, func(t *testing.T, body string) platformtest.PoolAnswer {
				t.Helper()
				ev := loadURLEvent(t, "chat-completions.json")
				ev.Headers["authorization"] = "Bearer " + platformtest.PoolProxyKey
				ev.Headers["content-length"] = strconv.Itoa(len(body))
				ev.Body = body
				payload, err := json.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				out, err := h.Invoke(context.Background(), payload)
				if err != nil {
					t.Fatalf("Invoke: %v", err)
				}
				if mode == ModeResponseStream {
					return streamedAnswer(t, out)
				}
				var res events.LambdaFunctionURLResponse
				if err := json.Unmarshal(out, &res); err != nil {
					t.Fatalf("reply %q: %v", out, err)
				}
				return platformtest.PoolAnswer{Status: res.StatusCode, Header: headerOf(res.Headers), Body: res.Body}
			})
		})
	}
}

// streamedAnswer reads a streamed reply: the JSON prelude, 8 NUL bytes, the body.
func streamedAnswer(t *testing.T, out []byte) platformtest.PoolAnswer {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(out))
	p := platformtest.ReadLambdaPrelude(t, r)
	body, _ := io.ReadAll(r)
	return platformtest.PoolAnswer{Status: p.StatusCode, Header: headerOf(p.Headers), Body: string(body)}
}

func headerOf(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}
