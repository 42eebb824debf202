package core

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// DefaultRouteName names the upstream of OXY_TARGET, which serves every path
// that no route of OXY_ROUTES claims, in the access log and wherever else a
// route is named.
const DefaultRouteName = "default"

// Route is one upstream as the settings describe it: OXY_TARGET with
// OXY_UPSTREAM_API_KEY (the route named DefaultRouteName), or an entry of
// OXY_ROUTES with its OXY_UPSTREAM_API_KEY_<NAME>.
type Route struct {
	// Name is the path prefix without its slash ("openai" serves /openai/...),
	// or DefaultRouteName.
	Name string
	// Target is the upstream base URL; its path prefixes every forwarded path.
	Target *url.URL
	// Credential is how the upstream takes its key.
	Credential Credential
	// Keys are the real keys sent upstream in place of the client's
	// credentials, taken in turn (see KeyPool), in the order configured;
	// none passes the client's own credentials through unchanged.
	Keys []Secret
	// KeySetting names the setting Keys came from, for messages.
	KeySetting string
}

// Credential is how an upstream takes its API key: in a header, as a Bearer
// token or bare, or in a query parameter. It is a small value so that a
// round-tripper can apply a different key on each attempt.
type Credential struct {
	// Header is the canonical name of the header that carries the key;
	// empty when the key travels in the query.
	Header string
	// Bearer sends the header as "Bearer <key>" (RFC 6750) instead of the bare key.
	Bearer bool
	// Query names the query parameter that carries the key when Header is empty.
	Query string
}

// Credentials of the vendors the presets know, and the Azure OpenAI one.
var (
	bearerCredential = Credential{Header: "Authorization", Bearer: true}
	apiKeyCredential = Credential{Header: "Api-Key"}
)

// credentialForHeader is the credential that OXY_UPSTREAM_API_KEY_HEADER
// names: Authorization means a Bearer token, any other header the bare key.
func credentialForHeader(header string) Credential {
	header = http.CanonicalHeaderKey(header)
	if header == "Authorization" {
		return bearerCredential
	}
	return Credential{Header: header}
}

// String names the scheme without any key, for -h and messages.
func (c Credential) String() string {
	switch {
	case c.Header == "":
		return "?" + c.Query + "="
	case c.Bearer:
		return c.Header + ": Bearer"
	default:
		return c.Header
	}
}

// Apply puts key into the outbound request out the way c says, replacing any
// value already there (under any spelling of the header name, or every
// occurrence of the query parameter), and leaving the rest of the raw query
// byte for byte as it was.
func (c Credential) Apply(out *http.Request, key Secret) {
	if c.Header == "" {
		q := withoutQueryParam(out.URL.RawQuery, c.Query)
		out.URL.RawQuery = joinQuery(q, c.Query+"="+url.QueryEscape(key.Reveal()))
		return
	}
	h := out.Header
	for name := range h {
		if strings.EqualFold(name, c.Header) {
			delete(h, name)
		}
	}
	v := key.Reveal()
	if c.Bearer {
		v = "Bearer " + v
	}
	h[c.Header] = []string{v}
}

// keyQueryParam is the query parameter in which Gemini's REST examples send
// the key (?key=...). Clients may send their key, or a proxy key, there.
// https://ai.google.dev/api/generate-content
const keyQueryParam = "key"

// removeClientCredentials deletes every credential a client can send from the
// outbound request: the credential headers, the WebSocket key subprotocol and
// the key query parameter. The rest of the raw query is left byte for byte.
func removeClientCredentials(out *http.Request) {
	removeCredentials(out.Header)
	out.URL.RawQuery = withoutQueryParam(out.URL.RawQuery, keyQueryParam)
}

// Upstream is one destination of the proxy at run time: its Route and the
// reverse proxy that forwards to it, built once at start-up.
type Upstream struct {
	Route
	proxy *httputil.ReverseProxy
	pool  *KeyPool // the route's real keys; nil without any
}
