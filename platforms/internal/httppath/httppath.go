// Package httppath rewrites the path of an inbound request for platform
// adapters that must remove a prefix the platform added (an API gateway stage,
// the Aliyun FC 2.0 default-domain prefix) before the proxy forwards it.
package httppath

import (
	"net/http"
	"net/url"
	"strings"
)

// Escaped returns r's path exactly as the client sent it: the origin-form
// request target up to the query. Requests without one (absolute-form targets,
// requests built in process) fall back to the parsed URL's escaped path.
func Escaped(r *http.Request) string {
	uri := r.RequestURI
	if strings.HasPrefix(uri, "/") && !strings.HasPrefix(uri, "//") {
		if i := strings.IndexByte(uri, '?'); i >= 0 {
			uri = uri[:i]
		}
		return uri
	}
	return r.URL.EscapedPath()
}

// WithPath returns a shallow copy of r whose path is escaped, an already
// escaped path starting with "/". URL.Path, URL.RawPath and RequestURI all
// change together, so the proxy, which forwards the client's bytes from
// RequestURI, and anything reading URL.Path agree. The query is kept.
func WithPath(r *http.Request, escaped string) *http.Request {
	r2 := r.WithContext(r.Context())
	u := *r.URL
	u.RawPath = ""
	if dec, err := url.PathUnescape(escaped); err == nil {
		u.Path = dec
		if u.EscapedPath() != escaped {
			u.RawPath = escaped
		}
	} else {
		u.Path = escaped
	}
	r2.URL = &u
	r2.RequestURI = escaped
	if u.RawQuery != "" || u.ForceQuery {
		r2.RequestURI += "?" + u.RawQuery
	}
	return r2
}

// TrimPrefix removes prefix (escaped, starting with "/", no trailing "/") from
// the escaped path p when it is a whole leading segment sequence: "/release"
// matches "/release" and "/release/v1", never "/releases". It reports whether
// it matched; the result is "/" when nothing follows the prefix.
func TrimPrefix(p, prefix string) (string, bool) {
	if prefix == "" || !strings.HasPrefix(p, prefix) {
		return p, false
	}
	rest := p[len(prefix):]
	switch {
	case rest == "":
		return "/", true
	case rest[0] == '/':
		return rest, true
	default:
		return p, false
	}
}
