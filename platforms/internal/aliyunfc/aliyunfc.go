// Package aliyunfc adapts the proxy to Aliyun Function Compute custom runtimes (FC
// 2.0 and 3.0): FC starts the binary (startup command /code/main, or the
// default /code/bootstrap) and forwards HTTP-trigger requests to it on
// 0.0.0.0 at the function's listening port (CAPort, 9000 unless configured).
// Responses sent with Transfer-Encoding: chunked stream through, so SSE works.
//
// Runtime contract: https://help.aliyun.com/zh/fc/user-guide/principles (startup
// command, CAPort), https://help.aliyun.com/document_detail/164217.htm (system
// environment variables, including FC_CUSTOM_LISTEN_PORT).
package aliyunfc

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/httppath"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/httpserver"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"
)

// defaultPort is FC's default listening port (CAPort) for custom runtimes.
const defaultPort = 9000

// portVariables are the environment variables through which FC tells the
// runtime its listening port, in order of preference. FC_CUSTOM_LISTEN_PORT
// is in FC's list of system environment variables; FC_SERVER_PORT is not
// documented but is what much public FC code reads. OXY_PORT, when set,
// overrides both.
var portVariables = []string{"FC_CUSTOM_LISTEN_PORT", "FC_SERVER_PORT"}

// Platform returns the FC custom runtime build: its presets and its adapter.
// lookup (os.LookupEnv) supplies the port FC assigned.
//
// Presets: the listening port is OXY_PORT if set, else FC_CUSTOM_LISTEN_PORT,
// else FC_SERVER_PORT, else 9000. The x-fc- prefix, which carries the
// function role's STS credentials (x-fc-access-key-id, -secret,
// x-fc-security-token) and account data, never reaches the AI vendor (core
// strips it in every build; it is listed here so the preset is visible).
func Platform(lookup core.LookupFunc) start.Platform {
	port, source := Port(lookup)
	return start.Platform{
		Name: "aliyunfc",
		Defaults: core.Defaults{
			Port:                port,
			StripHeaderPrefixes: []string{"X-Fc-"},
		},
		Wrap: func(cfg core.Config, logger *slog.Logger, next http.Handler) http.Handler {
			if _, set := lookup("OXY_PORT"); !set {
				logger.Info("listening port chosen", "port", cfg.Port, "from", source)
			}
			return Wrap(cfg, logger, next)
		},
		Check:     Check,
		NewRunner: httpserver.Serverless,
	}
}

// Check refuses OXY_ALLOW_CIDRS. A custom runtime's socket peer is FC's own
// front end, never the client, and FC vouches for no client address that
// reaches a custom runtime: x-fc-client-ip is not among the documented
// request headers of custom runtimes
// (https://www.alibabacloud.com/help/en/functioncompute/fc/context-and-log-format-1),
// and FC's own advice for X-Forwarded-For, X-Real-IP and X-Client-IP is that
// they may be forged
// (https://www.alibabacloud.com/help/en/functioncompute/fc/how-to-get-the-original-ip-address-of-the-client-when-the-http-trigger-calls-the-built-in-runtime-function).
// An allow-list could only admit everyone or no one, so it is refused at
// startup rather than left to look like protection.
func Check(cfg core.Config) error {
	if len(cfg.AllowCIDRs) > 0 {
		return &core.ConfigError{Problems: []string{"OXY_ALLOW_CIDRS: not supported on Aliyun FC: FC gives a custom " +
			"runtime no client address it vouches for (the connection comes from FC's own front end, and " +
			"x-fc-client-ip or X-Forwarded-For could be sent by the client), so the list could not tell " +
			"clients apart; unset it and hand out proxy keys with OXY_AUTH_KEYS instead"}}
	}
	return nil
}

// Port returns the listening port FC assigned and the variable it came from:
// the first of portVariables holding a valid port, else 9000 ("default").
func Port(lookup core.LookupFunc) (int, string) {
	for _, name := range portVariables {
		v, ok := lookup(name)
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 1 && n <= 65535 {
			return n, name
		}
	}
	return defaultPort, "default"
}

// errEventInvocation answers an FC event invocation. 400, not 5xx: the caller
// invoked the function the wrong way (InvokeFunction / console "Test" with an
// event payload instead of an HTTP request to the trigger URL), retrying will
// not help, and neither the proxy nor the AI vendor failed; a 5xx would also
// count as a function error and make FC retry asynchronous invocations.
var errEventInvocation = &core.APIError{
	Status:  http.StatusBadRequest,
	Type:    "invalid_request_error",
	Code:    "fc_event_invocation_not_supported",
	Message: "this function is an HTTP proxy: send HTTP requests to its HTTP trigger URL instead of invoking it with an event",
}

// lifecycleHooks are FC's instance lifecycle callbacks. They only arrive if
// configured; the proxy has nothing to do for them and must not forward them.
var lifecycleHooks = map[string]bool{"/initialize": true, "/pre-freeze": true, "/pre-stop": true}

// Wrap is the FC adapter around the proxy. Requests that FC itself makes (an
// event invocation, lifecycle hooks; marked by x-fc-control-path) are
// answered locally and never forwarded; the access log notes which.
// HTTP-trigger requests through the FC 2.0 default domain lose their
// /2016-08-15/proxy/<service>/<function> prefix.
func Wrap(cfg core.Config, logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch control := r.Header.Get("X-Fc-Control-Path"); {
		case control == "/invoke":
			core.AddLogAttrs(r, slog.String("rejected", errEventInvocation.Code))
			core.WriteError(w, errEventInvocation)
			return
		case lifecycleHooks[control]:
			core.AddLogAttrs(r, slog.String("fc_lifecycle_hook", control))
			w.WriteHeader(http.StatusOK)
			return
		}
		if p, ok := TrimDefaultDomainPrefix(httppath.Escaped(r)); ok {
			r = httppath.WithPath(r, p)
		}
		next.ServeHTTP(w, r)
	})
}

// TrimDefaultDomainPrefix removes the FC 2.0 default domain's literal prefix
// /2016-08-15/proxy/<service>[.<qualifier>]/<function> from the escaped path p
// and reports whether it was there. Nothing else is trusted: x-fc-base-path
// has been seen equal to the whole request path on FC 3.0.
func TrimDefaultDomainPrefix(p string) (string, bool) {
	const lead = "/2016-08-15/proxy/"
	if !strings.HasPrefix(p, lead) {
		return p, false
	}
	rest := p[len(lead):]
	service, rest, ok := strings.Cut(rest, "/")
	if !ok || service == "" {
		return p, false
	}
	function, rest, _ := strings.Cut(rest, "/")
	if function == "" {
		return p, false
	}
	return "/" + rest, true
}
