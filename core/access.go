package core

import (
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// Access control: the checks that run before a request is proxied, in this
// order (see Handler.ServeHTTP):
//
//  1. the health route (OXY_HEALTH_PATH), answered before everything else and
//     without an access-log line, so load balancers and orchestrators can
//     probe from any address without a key; it reveals only status, version
//     and uptime;
//  2. the IP allow-list (OXY_ALLOW_CIDRS): 403;
//  3. CORS preflights (OXY_CORS_ORIGINS), answered locally: browsers send
//     them without credentials, so they come before the key check;
//  4. the proxy key (OXY_AUTH_KEYS): 401;
//
// and then, on the way out, the client's credentials are replaced by the real
// key of the request's route (OXY_UPSTREAM_API_KEY or OXY_UPSTREAM_API_KEY_<NAME>;
// see Handler.rewrite). Every refusal is an OpenAI-shaped JSON error
// and never reaches the upstream.

// accessControl holds the parsed access settings; a nil part is switched off.
type accessControl struct {
	health *healthRoute
	allow  *allowList
	cors   *corsPolicy
	keys   *keyring
}

func newAccessControl(c Config) *accessControl {
	return &accessControl{
		health: newHealthRoute(c.HealthPath),
		allow:  newAllowList(c.AllowCIDRs),
		cors:   newCORSPolicy(c.CORSOrigins),
		keys:   newKeyring(c.AuthKeys),
	}
}

// Errors for the requests access control refuses. OpenAI's own 401s use the
// type invalid_request_error; the messages never repeat what the client sent.
var (
	errMissingKey = &APIError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "missing_api_key",
		Message: "this proxy needs an API key issued by its operator: send it as Authorization: Bearer <key>"}
	errInvalidKey = &APIError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key",
		Message: "the API key is not one this proxy accepts"}
	errAddressNotAllowed = &APIError{Status: http.StatusForbidden, Type: "invalid_request_error", Code: "address_not_allowed",
		Message: "requests from this address are not allowed by the proxy (OXY_ALLOW_CIDRS)"}
)

// rejectedAttr names a refusal in the access log.
func rejectedAttr(e *APIError) slog.Attr { return slog.String("rejected", e.Code) }

// serveHealth answers the health route, and reports whether it did.
func (a *accessControl) serveHealth(w http.ResponseWriter, r *http.Request) bool {
	return a.health != nil && a.health.serve(w, r)
}

// decorate sets the proxy's CORS headers on every response to r, proxied,
// refused or made by the proxy (so scripts can read a 401 or 502 too).
func (a *accessControl) decorate(w http.ResponseWriter, r *http.Request) {
	if a.cors != nil {
		a.cors.decorate(w.Header(), r)
	}
}

// reject runs the allow-list, CORS and key checks on r, answering r itself
// when it must not be proxied; it reports whether it did. r must carry the
// access-log record, so that the caller's name or the refusal is logged.
func (a *accessControl) reject(w http.ResponseWriter, r *http.Request) bool {
	if a.allow != nil {
		if addr, ok := a.allow.allows(r); !ok {
			AddLogAttrs(r, rejectedAttr(errAddressNotAllowed), slog.String("client_addr", addrString(addr)))
			WriteError(w, errAddressNotAllowed)
			return true
		}
	}
	if a.cors != nil && isPreflight(r) {
		a.cors.preflight(w, r)
		return true
	}
	if a.keys != nil {
		presented := presentedKeys(r.Header, r.URL.RawQuery)
		label, ok := a.keys.match(presented)
		if !ok {
			e := errInvalidKey
			if len(presented) == 0 {
				e = errMissingKey
			}
			AddLogAttrs(r, rejectedAttr(e))
			// RFC 9110 section 11.6.1: a 401 carries a challenge.
			w.Header().Set("Www-Authenticate", `Bearer realm="chatgpt_reverse_proxy"`)
			WriteError(w, e)
			return true
		}
		if x := ExchangeFrom(r); x != nil {
			x.Caller = label
		}
	}
	return false
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.String()
}

// access parses the access-control settings into c. The key settings are
// secret: their problems name the setting (and entry), never the value.
func (p *parser) access(c *Config) {
	keys, problems := parseProxyKeys(p.get("OXY_AUTH_KEYS"))
	for _, problem := range problems {
		p.failSecret("OXY_AUTH_KEYS", problem)
	}
	c.AuthKeys = keys
	c.UpstreamAPIKeys = p.realKeys("OXY_UPSTREAM_API_KEY")
	c.UpstreamAPIKeyHeader = p.keyHeader("OXY_UPSTREAM_API_KEY_HEADER", c)
	c.CORSOrigins = p.origins("OXY_CORS_ORIGINS")
	if hp := p.get("OXY_HEALTH_PATH"); checkHealthPath(hp) != nil {
		p.fail("OXY_HEALTH_PATH", hp, checkHealthPath(hp).Error())
	} else {
		c.HealthPath = hp
	}
	before := len(p.problems)
	c.AllowCIDRs = p.cidrs("OXY_ALLOW_CIDRS")
	// A guard that is set but wrong has its own problem above; calling it
	// missing too would send the reader looking for a setting that is there.
	guardWrong := len(problems) > 0 || len(p.problems) > before
	p.routes(c)
	p.crossCheckAccess(c, guardWrong)
}

func (p *parser) failSecret(name, problem string) {
	p.problems = append(p.problems, name+": "+problem)
}

func printable(s string) bool {
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// keyHeader returns the header that carries the upstream key: the setting, or
// by default Api-Key for Azure OpenAI hosts and Authorization for the rest.
// It is empty when there is no upstream key.
func (p *parser) keyHeader(name string, c *Config) string {
	v := p.get(name)
	switch {
	case len(c.UpstreamAPIKeys) == 0 && v != "":
		p.fail(name, v, "set without OXY_UPSTREAM_API_KEY, want both or neither")
	case len(c.UpstreamAPIKeys) == 0:
	case v == "":
		return defaultKeyHeader(c.Target)
	default:
		if err := checkKeyHeader(v); err != nil {
			p.fail(name, v, err.Error())
			return ""
		}
		return http.CanonicalHeaderKey(v)
	}
	return ""
}

func (p *parser) origins(name string) []string {
	var out []string
	seen := map[string]bool{}
	for _, item := range p.list(name) {
		o, err := checkOrigin(item)
		if err != nil {
			p.fail(name, item, err.Error())
			continue
		}
		if !seen[strings.ToLower(o)] {
			seen[strings.ToLower(o)] = true
			out = append(out, o)
		}
	}
	if seen["*"] && len(out) > 1 {
		p.fail(name, p.get(name), "* already allows every origin, want * alone or a list of origins")
	}
	return out
}

func (p *parser) cidrs(name string) []netip.Prefix {
	var out []netip.Prefix
	for _, item := range p.list(name) {
		prefix, err := parseAllowItem(item)
		if err != nil {
			p.fail(name, item, err.Error())
			continue
		}
		out = append(out, prefix)
	}
	return out
}

// crossCheckAccess reports combinations that would defeat the settings'
// purpose, for the default route and for every route of OXY_ROUTES alike.
// guardWrong reports that OXY_AUTH_KEYS or OXY_ALLOW_CIDRS has problems of
// its own, so a real key is not reported as unguarded.
func (p *parser) crossCheckAccess(c *Config, guardWrong bool) {
	for _, r := range c.AllRoutes() {
		setting := r.KeySetting
		if r.Name != DefaultRouteName {
			setting += " (route " + r.Name + ")"
		}
		// Clients present proxy keys, not vendor keys: without the real key
		// the upstream would receive nothing it accepts.
		if len(c.AuthKeys) > 0 && len(r.Keys) == 0 {
			p.failSecret("OXY_AUTH_KEYS", "set without "+setting+"; the proxy keys replace the client's key, "+
				"so the proxy must hold the real one (for an upstream that needs none, set any value)")
		}
		// The real key given to anyone who finds the URL would be spent by anyone.
		if len(r.Keys) > 0 && len(c.AuthKeys) == 0 && len(c.AllowCIDRs) == 0 && !guardWrong {
			p.failSecret(r.KeySetting, "set without OXY_AUTH_KEYS or OXY_ALLOW_CIDRS, so anyone who finds the URL "+
				"could spend the key; hand out keys with OXY_AUTH_KEYS, or limit addresses with OXY_ALLOW_CIDRS "+
				"(0.0.0.0/0,::/0 accepts every address)")
		}
		for _, k := range c.AuthKeys {
			if slices.Contains(r.Keys, k.Key) {
				p.failSecret("OXY_AUTH_KEYS", "a proxy key is the upstream key itself ("+r.KeySetting+"); hand out keys of your own")
				break
			}
		}
	}
}
