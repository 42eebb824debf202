package core

import (
	"encoding/json"
	"errors"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// healthRoute answers OXY_HEALTH_PATH locally, for Docker, Kubernetes and
// load-balancer checks: it never contacts the upstream and needs no key.
type healthRoute struct {
	path  string
	start time.Time
}

func newHealthRoute(p string) *healthRoute {
	if p == "" {
		return nil
	}
	return &healthRoute{path: p, start: time.Now()}
}

// serve answers a GET or HEAD of exactly the health path, and reports whether
// it did. Other methods and paths are left to the proxy.
func (hr *healthRoute) serve(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != hr.path || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	body, _ := json.Marshal(struct {
		Status        string `json:"status"`
		Version       string `json:"version"`
		UptimeSeconds int64  `json:"uptime_seconds"`
	}{"ok", VersionString(), int64(time.Since(hr.start) / time.Second)})
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
	return true
}

// checkHealthPath validates OXY_HEALTH_PATH (empty is valid: no route). The
// route must not hide a path of the target's API: OpenAI-style APIs live
// under a version segment (/v1, /v1beta) and Azure OpenAI under /openai.
func checkHealthPath(p string) error {
	if p == "" {
		return nil
	}
	if !strings.HasPrefix(p, "/") {
		return errors.New("must start with /, want e.g. /healthz")
	}
	for _, c := range []byte(p) {
		if !isAlnum(c) && !strings.ContainsRune("/-._~", rune(c)) {
			return errors.New("must be a plain path of A-Z a-z 0-9 / - . _ ~, want e.g. /healthz")
		}
	}
	if path.Clean(p) != p || p == "/" {
		return errors.New("must be a clean path below /, want e.g. /healthz")
	}
	first, _, _ := strings.Cut(strings.ToLower(p[1:]), "/")
	if first == "openai" || (len(first) >= 2 && first[0] == 'v' && first[1] >= '0' && first[1] <= '9') {
		return errors.New("would hide API paths of the target, want a path outside the API such as /healthz")
	}
	return nil
}
