package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// The Prometheus test runs the real Prometheus server and promtool (Debian's
// "prometheus" package) with build/grafana/prometheus.yml, the config the
// docker-compose example mounts, against the server binary on loopback: the
// compose example itself needs images this machine cannot pull. Without the
// package it skips, saying why; PROMETHEUS_TESTS=require (set by .ci/run)
// makes that a failure.

var grafanaPrometheusYML = filepath.Join("..", "..", "build", "grafana", "prometheus.yml")

// needPrometheus returns the prometheus and promtool commands, or skips
// (fails under PROMETHEUS_TESTS=require) when they are not installed.
func needPrometheus(t *testing.T) (prometheus, promtool string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a Prometheus server; skipped with -short")
	}
	var missing []string
	find := func(name string) string {
		bin, err := exec.LookPath(name)
		if err != nil {
			missing = append(missing, name)
		}
		return bin
	}
	prometheus, promtool = find("prometheus"), find("promtool")
	if len(missing) > 0 {
		why := fmt.Sprintf("no %s (Debian: apt-get install prometheus; .ci/run installs it)", strings.Join(missing, " or "))
		if os.Getenv("PROMETHEUS_TESTS") == "require" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	return prometheus, promtool
}

// TestPrometheus_checksTheComposeConfig: promtool accepts the Prometheus
// config of the docker-compose example as it is shipped.
func TestPrometheus_checksTheComposeConfig(t *testing.T) {
	_, promtool := needPrometheus(t)
	out, err := exec.Command(promtool, "check", "config", grafanaPrometheusYML).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config %s: %v\n%s", grafanaPrometheusYML, err, out)
	}
}

// TestPrometheus_scrapesTheBinary runs the server binary with
// OXY_METRICS_ADDR on loopback, sends it answers with known token counts
// (a JSON chat completion and an include_usage stream), and has a real
// Prometheus, configured by the compose example's prometheus.yml with only
// its target and interval changed, scrape it; the totals read back through
// Prometheus's HTTP query API are what the mock sent.
func TestPrometheus_scrapesTheBinary(t *testing.T) {
	prometheus, _ := needPrometheus(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, `data: {"id":"c2","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}`+"\n\n")
			w.(http.Flusher).Flush()
			io.WriteString(w, `data: {"id":"c2","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":5,"total_tokens":14}}`+"\n\ndata: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],`+
			`"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,"prompt_tokens_details":{"cached_tokens":64},"completion_tokens_details":{"reasoning_tokens":8}}}`)
	}))
	t.Cleanup(up.Close)

	metricsPort := testkit.FreePort(t)
	px := startBinary(t, map[string]string{
		"OXY_TARGET":           up.URL,
		"OXY_AUTH_KEYS":        "alice:sk-proxy-aaaaaaaaaaaaaaaaaaaa",
		"OXY_UPSTREAM_API_KEY": "sk-real",
		"OXY_METRICS_ADDR":     "127.0.0.1:" + strconv.Itoa(metricsPort),
	})
	t.Cleanup(func() { px.Stop(t) })
	client := newClient(t)
	send := func(body string) {
		req, _ := http.NewRequest(http.MethodPost, px.base()+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer sk-proxy-aaaaaaaaaaaaaaaaaaaa")
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	for range 3 {
		send(`{"model":"gpt-4o-mini","messages":[]}`)
	}
	send(`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}`)

	// The compose example's config, scraping the binary every second.
	shipped, err := os.ReadFile(grafanaPrometheusYML)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(shipped)
	for from, to := range map[string]string{
		`"chatgpt_reverse_proxy:9464"`: `"127.0.0.1:` + strconv.Itoa(metricsPort) + `"`,
		"scrape_interval: 15s":         "scrape_interval: 1s",
	} {
		if !strings.Contains(conf, from) {
			t.Fatalf("%s no longer has %s; update this test with it", grafanaPrometheusYML, from)
		}
		conf = strings.Replace(conf, from, to, 1)
	}
	dir := t.TempDir()
	confFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p, port := testkit.StartOnFreePort(t, func(port int) *testkit.Process {
		return testkit.Launch(t, prometheus, nil, "--config.file="+confFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
			"--web.listen-address=127.0.0.1:"+strconv.Itoa(port))
	}, func(_ *testkit.Process, port int) bool {
		res, err := client.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/-/ready")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	t.Cleanup(func() { p.Stop(t) })
	api := "http://127.0.0.1:" + strconv.Itoa(port)

	// 3 x (100 in, 20 out, 64 cached, 8 reasoning) and the stream's 9 in, 5 out.
	want := map[string]float64{"input": 309, "output": 65, "cached_input": 192, "reasoning": 24}
	var got map[string]float64
	if !testkit.WaitUntil(30*time.Second, func() bool {
		got = query(t, client, api, `sum by (type) (oxy_tokens_total{route="default",model="gpt-4o-mini",caller="alice"})`, "type")
		return fmt.Sprint(got) == fmt.Sprint(want)
	}) {
		t.Fatalf("Prometheus has oxy_tokens_total by type %v; want %v", got, want)
	}
	if got := query(t, client, api, `sum by (code) (oxy_requests_total{caller="alice"})`, "code"); got["200"] != 4 || len(got) != 1 {
		t.Errorf("Prometheus has oxy_requests_total by code %v; want 4 with code 200", got)
	}
}

// query runs an instant query through Prometheus's HTTP API and returns the
// value of each series by the given label.
func query(t *testing.T, client *http.Client, api, q, by string) map[string]float64 {
	t.Helper()
	res, err := client.Get(api + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: status %d %q, %v", q, res.StatusCode, r.Status, err)
	}
	out := map[string]float64{}
	for _, s := range r.Data.Result {
		v, _ := s.Value[1].(string)
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("query %s: value %v", q, s.Value)
		}
		out[s.Metric[by]] = f
	}
	return out
}
