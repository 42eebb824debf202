package core

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// CORS for browser apps (OXY_CORS_ORIGINS), following the Fetch standard's
// CORS protocol: https://fetch.spec.whatwg.org/#http-cors-protocol. When on,
// the proxy owns CORS: it answers preflights itself and replaces the
// upstream's Access-Control-* headers with its own. It never sends
// Access-Control-Allow-Credentials: cookies are not forwarded anyway.

// corsAllowMethods are the methods a preflight may ask for.
const corsAllowMethods = "GET, POST, PUT, PATCH, DELETE"

// corsMaxAge lets a browser cache a preflight answer for two hours (the most
// Chromium honours).
const corsMaxAge = "7200"

// corsAllowHeaders and corsAllowHeaderPrefixes are the request headers
// browser scripts may send: those of the official JavaScript SDK
// (Authorization, OpenAI-Organization/Project/Beta, X-Stainless-*), the other
// key headers, and Anthropic's (anthropic-version...).
var (
	corsAllowHeaders = []string{
		"accept", "authorization", "content-type", "api-key", "x-api-key", "x-goog-api-key",
		"idempotency-key", "x-client-request-id", "user-agent",
	}
	corsAllowHeaderPrefixes = []string{"openai-", "x-stainless-", "anthropic-"}
)

// corsExposeHeaders and corsExposePrefixes are the response headers scripts
// may read: request ids, rate limits and retry hints.
var (
	corsExposeHeaders  = []string{"x-request-id", "request-id", "retry-after", "retry-after-ms", "apim-request-id"}
	corsExposePrefixes = []string{"x-ratelimit-", "x-oxy-ratelimit-", "openai-", "anthropic-ratelimit-"}
)

// corsPolicy is the parsed OXY_CORS_ORIGINS.
type corsPolicy struct {
	any     bool
	origins map[string]bool // lower-case scheme://host[:port]
}

func newCORSPolicy(origins []string) *corsPolicy {
	if len(origins) == 0 {
		return nil
	}
	c := &corsPolicy{origins: map[string]bool{}}
	for _, o := range origins {
		if o == "*" {
			c.any = true
		}
		c.origins[strings.ToLower(o)] = true
	}
	return c
}

func (c *corsPolicy) allowed(origin string) bool {
	return origin != "" && (c.any || c.origins[strings.ToLower(origin)])
}

// decorate sets the CORS headers of every response to r, proxied or made by
// the proxy (so scripts can read a 401 or 502 too).
func (c *corsPolicy) decorate(h http.Header, r *http.Request) {
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	switch {
	case !c.allowed(origin):
	case c.any:
		h.Set("Access-Control-Allow-Origin", "*")
	default:
		h.Set("Access-Control-Allow-Origin", origin)
	}
}

// isPreflight reports whether r is a CORS preflight request.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}

var errOriginNotAllowed = &APIError{Status: http.StatusForbidden, Type: "invalid_request_error", Code: "origin_not_allowed",
	Message: "this origin may not call the proxy from a browser (OXY_CORS_ORIGINS)"}

// preflight answers a preflight locally: 204 with the allowed methods and
// those requested headers that are allowed (a browser then refuses a request
// whose other headers were not granted), or 403 for an origin not listed.
func (c *corsPolicy) preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
	if !c.allowed(r.Header.Get("Origin")) {
		AddLogAttrs(r, rejectedAttr(errOriginNotAllowed))
		WriteError(w, errOriginNotAllowed)
		return
	}
	h.Set("Access-Control-Allow-Methods", corsAllowMethods)
	if granted := allowedRequestHeaders(r.Header.Values("Access-Control-Request-Headers")); granted != "" {
		h.Set("Access-Control-Allow-Headers", granted)
	}
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
}

// allowedRequestHeaders returns the requested header names that are allowed,
// lower-case and comma-separated. Names not allowed are left out rather than
// echoed.
func allowedRequestHeaders(requested []string) string {
	var granted []string
	for _, v := range requested {
		for _, name := range strings.Split(v, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name != "" && matchesName(name, corsAllowHeaders, corsAllowHeaderPrefixes) {
				granted = append(granted, name)
			}
		}
	}
	return strings.Join(granted, ", ")
}

// cleanUpstream removes the upstream's Access-Control-* headers from a
// proxied response, so the proxy's own (set by decorate) are the only ones,
// and lists the response's readable headers in Access-Control-Expose-Headers.
// The Fetch standard has no prefix wildcard, so the names are listed as the
// upstream sent them.
func (c *corsPolicy) cleanUpstream(h http.Header) {
	var expose []string
	for name := range h {
		lower := strings.ToLower(name)
		switch {
		case strings.HasPrefix(lower, "access-control-"):
			delete(h, name)
		case matchesName(lower, corsExposeHeaders, corsExposePrefixes):
			expose = append(expose, lower)
		}
	}
	if len(expose) > 0 {
		slices.Sort(expose)
		h.Set("Access-Control-Expose-Headers", strings.Join(expose, ", "))
	}
}

func matchesName(lower string, names, prefixes []string) bool {
	for _, n := range names {
		if lower == n {
			return true
		}
	}
	for _, p := range prefixes {
		if strings.HasPrefix(lower, p) {
			return true
		}
	}
	return false
}

// checkOrigin validates one OXY_CORS_ORIGINS entry and returns it without a
// trailing slash: "*" or scheme://host[:port], as browsers send in Origin.
func checkOrigin(o string) (string, error) {
	if o == "*" {
		return o, nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("not an origin, want e.g. https://app.example.com or *")
	}
	if (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("an origin has no path, want e.g. https://app.example.com")
	}
	return u.Scheme + "://" + u.Host, nil
}
