package metrics

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core/usage"
	"go.yaml.in/yaml/v3"
)

var grafanaDir = filepath.Join("..", "..", "build", "grafana")

// dashboard is the part of Grafana's dashboard JSON model the test reads.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name, Type string
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// metricName finds the metric names an expression selects.
var metricName = regexp.MustCompile(`\b(oxy_[a-z_]+|process_[a-z_]+|go_[a-z_]+)\b`)

// TestDashboard_queriesExistingMetrics loads build/grafana/dashboard.json and
// checks that it is a dashboard with the panels the README promises, and that
// every metric it queries is one this package exports.
func TestDashboard_queriesExistingMetrics(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(grafanaDir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard.json is not valid JSON: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard has no uid or title")
	}
	// Every metric family this package can export, after one exchange of
	// each kind has been observed.
	m := New()
	m.Started("default")
	m.Finished(&core.Exchange{Route: "default", Model: "m", Caller: "alice", Status: 502, TTFB: time.Millisecond, Duration: time.Second,
		UpstreamError: core.UpstreamUnreachable, Usage: usage.Usage{Input: 1, Output: 1, CachedInput: 1, Reasoning: 1, Reported: 15}})
	m.Retried("default", "rate_limited")
	m.KeyRested("default", "#1", "rate_limited", time.Now())
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		name := f.GetName()
		exported[name] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			exported[name+suffix] = true
		}
	}
	ids := map[int]bool{}
	queried := map[string]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q query %s: %q selects no metric", p.Title, tg.RefID, tg.Expr)
			}
			for _, n := range names {
				queried[n] = true
				if !exported[n] {
					t.Errorf("panel %q queries %s, which is not exported", p.Title, n)
				}
			}
			if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") || strings.Count(tg.Expr, "{") != strings.Count(tg.Expr, "}") {
				t.Errorf("panel %q: unbalanced query %q", p.Title, tg.Expr)
			}
		}
	}
	// What issue 12 asks the dashboard to show.
	for _, want := range []string{"oxy_tokens_total", "oxy_requests_total", "oxy_upstream_errors_total",
		"oxy_request_duration_seconds_bucket", "oxy_time_to_first_byte_seconds_bucket"} {
		if !queried[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	for _, want := range []string{"datasource", "route", "caller", "model"} {
		if !vars[want] {
			t.Errorf("no dashboard variable %q", want)
		}
	}
}

// TestCompose_metricsWiring reads the docker-compose example: the proxy's
// metrics listener is on, is not published on the host, and is the target
// Prometheus scrapes; Grafana gets the dashboard and its provisioning.
func TestCompose_metricsWiring(t *testing.T) {
	var compose struct {
		Services map[string]struct {
			Ports       []string          `yaml:"ports"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(readFile(t, "docker-compose.yml"), &compose); err != nil {
		t.Fatal(err)
	}
	proxy, ok := compose.Services["chatgpt_reverse_proxy"]
	if !ok {
		t.Fatal("no chatgpt_reverse_proxy service")
	}
	addr := proxy.Environment["OXY_METRICS_ADDR"]
	_, port, found := strings.Cut(addr, ":")
	if !found || port == "" {
		t.Fatalf("OXY_METRICS_ADDR = %q; want host:port", addr)
	}
	for _, p := range proxy.Ports {
		if strings.Contains(p, port) {
			t.Errorf("the metrics port %s is published on the host (%q)", port, p)
		}
	}
	var prom struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus.yml"), &prom); err != nil {
		t.Fatal(err)
	}
	if len(prom.ScrapeConfigs) == 0 || len(prom.ScrapeConfigs[0].StaticConfigs) == 0 ||
		len(prom.ScrapeConfigs[0].StaticConfigs[0].Targets) == 0 ||
		prom.ScrapeConfigs[0].StaticConfigs[0].Targets[0] != "chatgpt_reverse_proxy:"+port {
		t.Errorf("Prometheus scrapes %+v; want chatgpt_reverse_proxy:%s", prom.ScrapeConfigs, port)
	}
	for _, svc := range []string{"prometheus", "grafana"} {
		for _, v := range compose.Services[svc].Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join(grafanaDir, src)); err != nil {
					t.Errorf("%s mounts %s, which does not exist", svc, src)
				}
			}
		}
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(grafanaDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
