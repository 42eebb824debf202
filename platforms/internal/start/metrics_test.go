package start_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/aliyunfc"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/awslambda"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/httpserver"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/tencentscf"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/tencentscfevent"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The event runtimes refuse OXY_METRICS_ADDR at start-up, naming it, and
// open nothing.
func TestPrepare_metricsRefusedByEventRuntimes(t *testing.T) {
	port := testkit.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for _, p := range []start.Platform{awslambda.Platform(), tencentscfevent.Platform()} {
		env := map[string]string{"OXY_METRICS_ADDR": addr, "_LAMBDA_SERVER_PORT": "9001"}
		_, _, err := start.Prepare(p, nil, testkit.Lookup(env), nil, io.Discard, io.Discard)
		var ce *core.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), `OXY_METRICS_ADDR="`+addr+`": not available on `+p.Name) {
			t.Errorf("%s: %v; want a configuration error naming OXY_METRICS_ADDR", p.Name, err)
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("%s: something listens on the metrics address after the refusal", p.Name)
		}
	}
}

// The long-lived builds serve /metrics on their own listener, beside the
// proxy's port, which never serves it; the meter reads a brotli answer in
// every build.
func TestRun_metricsBesideTheProxy(t *testing.T) {
	var wire strings.Builder
	bw := brotli.NewWriter(&wire)
	io.WriteString(bw, `{"object":"chat.completion","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":13}}`)
	bw.Close()
	var mu sync.Mutex
	var upstreamPaths []string
	seen := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), upstreamPaths...)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upstreamPaths = append(upstreamPaths, r.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "br")
		io.WriteString(w, wire.String())
	}))
	defer up.Close()
	for _, p := range []start.Platform{{Name: "server", NewRunner: httpserver.LongLived}, tencentscf.Platform(), aliyunfc.Platform(testkit.Lookup(nil))} {
		t.Run(p.Name, func(t *testing.T) {
			maddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
			run := platformtest.RunInProcess(t, p, map[string]string{"OXY_TARGET": up.URL, "OXY_METRICS_ADDR": maddr, "OXY_LOG_FORMAT": "json"})
			req, _ := http.NewRequest("POST", run.URL+"/v1/chat/completions", strings.NewReader(`{}`))
			req.Header.Set("Accept-Encoding", "br")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(got) != wire.String() {
				t.Fatal("the br answer changed on the way through")
			}
			if !run.Logs.WaitFor(testkit.StartTimeout, `"input_tokens":11`, `"output_tokens":13`) {
				t.Errorf("access log lacks the br answer's usage:\n%s", run.Logs)
			}
			res, err = http.Get("http://" + maddr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			parser := expfmt.NewTextParser(model.UTF8Validation)
			mf, err := parser.TextToMetricFamilies(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			var input float64
			for _, m := range mf["oxy_tokens_total"].GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "type" && l.GetValue() == "input" {
						input += m.GetCounter().GetValue()
					}
				}
			}
			if input != 11 {
				t.Errorf("oxy_tokens_total{type=input} = %v; want 11", input)
			}
			// The proxy's own port forwards /metrics like any path.
			before := len(seen())
			res, err = http.Get(run.URL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if after := seen(); len(after) != before+1 || after[before] != "/metrics" {
				t.Errorf("the proxy's port answered /metrics itself; the upstream saw %v", after[before:])
			}
		})
	}
}

// A metrics address in use stops start-up with the setting's name.
func TestPrepare_metricsAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	env := map[string]string{"OXY_METRICS_ADDR": ln.Addr().String(), "OXY_HOST": "127.0.0.1"}
	_, _, err = start.Prepare(start.Platform{Name: "server", NewRunner: httpserver.LongLived}, nil, testkit.Lookup(env), nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "(OXY_METRICS_ADDR)") {
		t.Errorf("Prepare = %v; want an error naming OXY_METRICS_ADDR", err)
	}
}
