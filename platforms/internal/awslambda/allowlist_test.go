package awslambda

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

// urlEventWith returns chat-completions.json with requestContext.http.sourceIp
// replaced and headers set, as Lambda would deliver it.
func urlEventWith(t *testing.T, sourceIP string, headers map[string]string) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(fixture(t, "chat-completions.json"), &ev); err != nil {
		t.Fatal(err)
	}
	ev["requestContext"].(map[string]any)["http"].(map[string]any)["sourceIp"] = sourceIP
	for k, v := range headers {
		ev["headers"].(map[string]any)[k] = v
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// OXY_ALLOW_CIDRS judges requestContext.http.sourceIp, which Lambda sets from
// the connection: an x-forwarded-for or x-real-ip the client sent (the
// fixture's x-forwarded-for starts with a client-supplied 192.0.2.99) never
// lets a request in, and an event without a sourceIp is refused. Both invoke
// modes build the request the same way; both are run.
func TestAllowList_sourceIPNotForwardedFor(t *testing.T) {
	forged := map[string]string{"x-forwarded-for": "203.0.113.7", "x-real-ip": "203.0.113.7"}
	tests := []struct {
		name   string
		event  func(t *testing.T) []byte
		allow  string
		status int
	}{
		{"sourceIp listed", func(t *testing.T) []byte { return fixture(t, "chat-completions.json") }, "203.0.113.0/24", 200},
		{"only forged x-forwarded-for entry listed", func(t *testing.T) []byte { return fixture(t, "chat-completions.json") }, "192.0.2.99", 403},
		{"sourceIp not listed, forged headers listed", func(t *testing.T) []byte { return urlEventWith(t, "198.51.100.1", forged) }, "203.0.113.0/24", 403},
		{"no sourceIp", func(t *testing.T) []byte { return urlEventWith(t, "", forged) }, "203.0.113.0/24", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/buffered", func(t *testing.T) {
			t.Parallel()
			rc, up := upstream(t, nil)
			res := invokeBuffered(t, context.Background(), up.URL, tt.event(t), env{"OXY_ALLOW_CIDRS": tt.allow})
			checkAllowed(t, rc, res.StatusCode, tt.status)
		})
		t.Run(tt.name+"/response_stream", func(t *testing.T) {
			t.Parallel()
			rc, up := upstream(t, nil)
			proxy, logger := proxyFor(t, up.URL, env{InvokeModeSetting: ModeResponseStream, "OXY_ALLOW_CIDRS": tt.allow})
			var ev events.LambdaFunctionURLRequest
			if err := json.Unmarshal(tt.event(t), &ev); err != nil {
				t.Fatal(err)
			}
			res, err := NewStreaming(proxy, logger).Invoke(context.Background(), &ev)
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			defer res.Close()
			r := bufio.NewReader(res)
			p := platformtest.ReadLambdaPrelude(t, r)
			_, _ = io.Copy(io.Discard, r)
			checkAllowed(t, rc, p.StatusCode, tt.status)
		})
	}
}

func checkAllowed(t *testing.T, rc *recorder, got, want int) {
	t.Helper()
	if got != want {
		t.Errorf("status = %d; want %d", got, want)
	}
	rc.mu.Lock()
	n := len(rc.reqs)
	rc.mu.Unlock()
	if wantN := map[bool]int{true: 1, false: 0}[want == http.StatusOK]; n != wantN {
		t.Errorf("upstream got %d requests; want %d", n, wantN)
	}
}
