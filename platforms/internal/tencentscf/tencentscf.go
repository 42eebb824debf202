// Package tencentscf adapts the proxy to Tencent Cloud SCF web functions: SCF
// starts scf_bootstrap, which runs the binary as an HTTP server on
// 0.0.0.0:9000, and forwards each function-URL (or API gateway) request to it
// with platform headers added. SSE streams through as chunked responses.
//
// Runtime contract: https://www.tencentcloud.com/document/product/583/40690
// (scf_bootstrap, port 9000) and https://www.tencentcloud.com/document/product/583/69491
// (function URLs).
package tencentscf

import (
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/httppath"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/httpserver"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/scfheaders"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"
)

// StripPathPrefixSetting names the optional path prefix removed from every
// request, for URLs copied from the retired API gateway ("/release/v1/...").
const StripPathPrefixSetting = "OXY_STRIP_PATH_PREFIX"

// Platform returns the SCF web function build: its presets and its adapter.
//
// Presets: SCF only reaches a web function on port 9000; the X-Scf- prefix
// (request, memory, timeout, namespace, account and role-credential headers)
// and the API gateway's request headers never reach the AI vendor, in addition
// to anything listed in OXY_HOP_HEADER_PREFIX.
func Platform() start.Platform {
	return start.Platform{
		Name: "tencentscf",
		Defaults: core.Defaults{
			Port:                9000,
			StripHeaderPrefixes: scfheaders.StripHeaderPrefixes(),
			StripHeaders:        scfheaders.StripHeaders(),
			Extra: []core.Setting{{
				Name:    StripPathPrefixSetting,
				Default: "",
				Usage:   "path prefix removed from requests, e.g. /release for old API gateway URLs (empty: off)",
				Check:   checkPathPrefix,
			}},
		},
		Wrap:      Wrap,
		NewRunner: httpserver.Serverless,
	}
}

// Wrap is the SCF adapter around the proxy: it takes the client's address
// from SCF, strips the configured path prefix from requests and keeps
// response headers within SCF's limit.
func Wrap(cfg core.Config, logger *slog.Logger, next http.Handler) http.Handler {
	prefix := strings.TrimRight(cfg.Extra[StripPathPrefixSetting], "/")
	trim := newHeaderTrimmer(logger)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = withClientAddr(r)
		if p, ok := httppath.TrimPrefix(httppath.Escaped(r), prefix); ok {
			r = httppath.WithPath(r, p)
		}
		next.ServeHTTP(&trimmingWriter{ResponseWriter: w, trim: trim, req: r}, r)
	})
}

// withClientAddr gives core the client's address as SCF states it, in
// r.RemoteAddr (see core.ClientAddr). The socket peer is SCF's own proxy,
// never the client, and X-Forwarded-For keeps what the client sent to the
// left of what the proxies append, so neither can be used. The address is
// the one in X-Scf-Remote-Addr, which function URLs add and SCF does not let
// callers set (see scfheaders.RemoteAddrHeader). Without exactly one valid
// address the client's address is unknown: RemoteAddr is emptied, so
// OXY_ALLOW_CIDRS refuses the request rather than judging SCF's proxy, and
// OXY_FORWARD_CLIENT_IP sends no address. core strips the header before
// forwarding; this runs before core.
func withClientAddr(r *http.Request) *http.Request {
	r2 := *r
	r2.RemoteAddr = ""
	if addr, ok := scfheaders.RemoteAddr(r.Header.Values(scfheaders.RemoteAddrHeader)); ok {
		r2.RemoteAddr = netip.AddrPortFrom(addr, 0).String()
	}
	return &r2
}

func checkPathPrefix(v string) error {
	switch {
	case v == "":
		return nil
	case !strings.HasPrefix(v, "/"):
		return errors.New("must start with /, want e.g. /release")
	case strings.TrimRight(v, "/") == "":
		return errors.New("must name a prefix, want e.g. /release (empty turns it off)")
	case strings.ContainsAny(v, "?# \t"):
		return errors.New("must be a path only, want e.g. /release")
	}
	return nil
}
