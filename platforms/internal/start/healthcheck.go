package start

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// healthcheckTimeout bounds -healthcheck; Docker's HEALTHCHECK in
// build/Dockerfile allows 5s.
const healthcheckTimeout = 3 * time.Second

// Healthcheck asks the health route of a proxy running on this machine with
// cfg (OXY_HOST, OXY_PORT, OXY_HEALTH_PATH) and returns nil if it answers
// 200, printing the answer to w. A proxy listening on every address
// (0.0.0.0, ::) is asked on 127.0.0.1. It is the -healthcheck flag: a
// container health check that needs no shell or curl in the image.
func Healthcheck(cfg core.Config, w io.Writer) error {
	if cfg.HealthPath == "" {
		return fmt.Errorf("-healthcheck: OXY_HEALTH_PATH is empty, so the health route is off and there is nothing to ask")
	}
	host := cfg.Host
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(cfg.Port)) + cfg.HealthPath
	// Never through HTTP_PROXY: the route is local.
	client := &http.Client{Timeout: healthcheckTimeout, Transport: &http.Transport{Proxy: nil}}
	res, err := client.Get(url)
	if err != nil {
		return fmt.Errorf("-healthcheck: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4<<10))
	if err != nil {
		return fmt.Errorf("-healthcheck: reading the answer of %s: %w", url, err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("-healthcheck: %s answered %s", url, res.Status)
	}
	_, _ = fmt.Fprintf(w, "%s\n", bytes.TrimSpace(body))
	return nil
}
