package core

import (
	"net/http"
	"net/textproto"
	"strings"
)

// clientAddressHeaders carry the client's address. They are never passed on
// from the client, and only added (X-Forwarded-For) when ForwardClientIP is set.
// httputil.ReverseProxy already drops Forwarded and X-Forwarded-* under Rewrite;
// the rest are dropped here.
var clientAddressHeaders = []string{
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
	"X-Real-Ip", "True-Client-Ip", "Cf-Connecting-Ip", "X-Client-Ip", "X-Original-Forwarded-For",
}

// strippedRequestHeaders are end-to-end headers that a client sends to the proxy
// but that must never reach the AI vendor: cookies belong to the proxy's own
// origin, and Proxy-Authorization is for the proxy, not the vendor.
var strippedRequestHeaders = []string{"Cookie", "Proxy-Authorization"}

// strippedResponseHeaders are upstream response headers that would mislead a
// client talking to the proxy. Alt-Svc (OpenAI sends h3=":443") would advertise
// the vendor's HTTP/3 endpoint as an alternative for the proxy's own origin.
var strippedResponseHeaders = []string{"Alt-Svc"}

// HeaderPolicy decides which inbound headers reach the upstream.
type HeaderPolicy struct {
	prefixes []string        // lower-case
	names    map[string]bool // canonical
}

// NewHeaderPolicy returns the request header policy for c.
func NewHeaderPolicy(c Config) HeaderPolicy {
	names := map[string]bool{}
	for _, list := range [][]string{strippedRequestHeaders, clientAddressHeaders, c.StripHeaders} {
		for _, n := range list {
			names[canonical(n)] = true
		}
	}
	return HeaderPolicy{prefixes: c.StripHeaderPrefixes, names: names}
}

// CleanRequest removes from h every header the upstream must not see:
// configured and platform prefixes, platform names, cookies and client addresses.
// Names are matched case-insensitively, so a header map built by hand (as the
// serverless adapters do) is cleaned as well as one parsed by net/http.
// Hop-by-hop headers, including those listed in Connection, are removed by
// httputil.ReverseProxy before this runs.
func (p HeaderPolicy) CleanRequest(h http.Header) {
	for name := range h {
		if p.Stripped(name) {
			delete(h, name)
		}
	}
}

// Stripped reports whether the header name is never forwarded upstream.
func (p HeaderPolicy) Stripped(name string) bool {
	if p.names[name] || p.names[canonical(name)] {
		return true
	}
	for _, prefix := range p.prefixes {
		if len(name) >= len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) {
			return true
		}
	}
	return false
}

// CleanResponse removes upstream response headers that must not reach the client.
func CleanResponse(h http.Header) {
	for _, n := range strippedResponseHeaders {
		delete(h, n)
	}
}

func canonical(name string) string {
	return textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name))
}
