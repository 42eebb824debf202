package core

import (
	"strings"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

func TestFromEnv_metricsAddrAndStreamUsage(t *testing.T) {
	for _, tc := range []struct {
		env        map[string]string
		addr, fail string
		stream     bool
	}{
		{env: nil},
		{env: map[string]string{"OXY_METRICS_ADDR": "127.0.0.1:9464", "OXY_STREAM_USAGE": "true"}, addr: "127.0.0.1:9464", stream: true},
		{env: map[string]string{"OXY_METRICS_ADDR": ":9464"}, addr: ":9464"},
		{env: map[string]string{"OXY_METRICS_ADDR": "[::1]:9464"}, addr: "[::1]:9464"},
		{env: map[string]string{"OXY_METRICS_ADDR": "9464"}, fail: `OXY_METRICS_ADDR="9464": must be host:port, want e.g. 127.0.0.1:9464 or :9464`},
		{env: map[string]string{"OXY_METRICS_ADDR": "127.0.0.1:0"}, fail: `OXY_METRICS_ADDR="127.0.0.1:0": must be host:port`},
		{env: map[string]string{"OXY_METRICS_ADDR": "http://127.0.0.1:9464/metrics"}, fail: `OXY_METRICS_ADDR="http://127.0.0.1:9464/metrics": must be host:port`},
		{env: map[string]string{"OXY_METRICS_ADDR": "0.0.0.0:9000"}, fail: `OXY_METRICS_ADDR="0.0.0.0:9000": must not use the proxy's own port (OXY_PORT)`},
		{env: map[string]string{"OXY_PORT": "8080", "OXY_METRICS_ADDR": ":8080"}, fail: `must not use the proxy's own port`},
		{env: map[string]string{"OXY_STREAM_USAGE": "yes"}, fail: `OXY_STREAM_USAGE="yes": must be true or false`},
	} {
		c, err := FromEnv(testkit.Lookup(tc.env), Options{Environ: testkit.Environ(tc.env)})
		if tc.fail != "" {
			if err == nil || !strings.Contains(err.Error(), tc.fail) {
				t.Errorf("%v: error %v; want %q", tc.env, err, tc.fail)
			}
			continue
		}
		if err != nil || c.MetricsAddr != tc.addr || c.StreamUsage != tc.stream {
			t.Errorf("%v: MetricsAddr %q, StreamUsage %v, %v; want %q, %v", tc.env, c.MetricsAddr, c.StreamUsage, err, tc.addr, tc.stream)
		}
	}
}
