package core

import (
	"net/http"
	"strings"
)

// Screening: requests that are not API calls are refused before the access
// checks and never reach the upstream. Each refusal below was found by probing
// the server with raw sockets (issue 17) and is answered as nginx answers it,
// with an OpenAI-shaped body.

var (
	errPathEscapesBase = &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_path",
		Message: "the request path has dot segments (.. or %2e%2e) that would leave the upstream's base path"}
	errRequestTarget = &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_request_target",
		Message: "the request target must be a path starting with /"}
	errUpgradeNotSupported = &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "upgrade_not_supported",
		Message: "the proxy upgrades connections to WebSocket only"}
	errMethodNotAllowed = &APIError{Status: http.StatusMethodNotAllowed, Type: "invalid_request_error", Code: "method_not_allowed",
		Message: "the proxy does not forward this method"}
)

// refusedMethods are methods that are never an API call: TRACE would echo the
// request (with the injected key, were it forwarded), CONNECT asks for a
// tunnel, and PRI is the HTTP/2 connection preface sent to an HTTP/1 port.
var refusedMethods = []string{http.MethodTrace, http.MethodConnect, "PRI"}

// allowedMethods is the Allow header of a 405 (RFC 9110 section 15.5.6).
const allowedMethods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

// screen refuses r when it is not an API request the proxy forwards, writing
// the answer and reporting whether it did. p is the escaped path that will
// be appended to the upstream's base path: the client's, less the route
// prefix (Router.Route), so dot segments are judged per route.
func screen(w http.ResponseWriter, r *http.Request, p string) bool {
	var e *APIError
	switch {
	case isRefusedMethod(r.Method):
		w.Header().Set("Allow", allowedMethods)
		e = errMethodNotAllowed
	case p != "" && p[0] != '/':
		// Asterisk-form ("OPTIONS *", the "PRI *" preface): the reverse
		// proxy would forward it as "/*". An absolute-form target without
		// a path ("http://host") has an empty one, meaning "/".
		e = errRequestTarget
	case hasForeignUpgrade(r):
		e = errUpgradeNotSupported
	case leavesBasePath(p):
		e = errPathEscapesBase
	default:
		return false
	}
	AddLogAttrs(r, rejectedAttr(e))
	// As nginx does: a client that sends these is not worth keeping.
	w.Header().Set("Connection", "close")
	WriteError(w, e)
	return true
}

func isRefusedMethod(m string) bool {
	for _, refused := range refusedMethods {
		if strings.EqualFold(m, refused) {
			return true
		}
	}
	return false
}

// hasForeignUpgrade reports whether r asks to switch to a protocol other
// than WebSocket (h2c, or anything else): the reverse proxy would tunnel the
// upstream's 101 as raw bytes, past every later check. A WebSocket upgrade
// must be a GET of HTTP/1.1 or later (RFC 6455 section 4.1; RFC 9110
// section 7.8 has servers ignore Upgrade in HTTP/1.0).
func hasForeignUpgrade(r *http.Request) bool {
	up := r.Header.Values("Upgrade")
	if len(up) == 0 {
		return false
	}
	return len(up) != 1 || !strings.EqualFold(strings.TrimSpace(up[0]), "websocket") || r.Method != http.MethodGet ||
		!r.ProtoAtLeast(1, 1)
}

// closeAfterAmbiguousFraming asks the server to close the connection after
// answering a request that a front end could have framed differently
// (RFC 9112 section 6.1): a chunked body, which may have come with a
// Content-Length the server dropped (net/http removes it before the handler
// runs, so the two cannot be told apart here), and an HTTP/1.0 request kept
// alive, whose Transfer-Encoding net/http ignores. Without this, bytes a
// Content-Length-framing front end sent as one request's body would be read
// as a second request. It runs before anything answers the request
// (Handler.open): the health route and a platform adapter's own answers
// leave the connection open too, and a request hidden behind one of them
// would otherwise reach the upstream with the real key.
func closeAfterAmbiguousFraming(w http.ResponseWriter, r *http.Request) {
	chunked := len(r.TransferEncoding) > 0
	http10KeepAlive := r.ProtoMajor == 1 && r.ProtoMinor == 0 && !r.Close
	if chunked || http10KeepAlive {
		w.Header().Set("Connection", "close")
	}
}

// leavesBasePath reports whether p, an escaped path that will be appended to
// an upstream's base path, has dot segments that climb above the point where
// it is appended, once something on the way resolves them (RFC 3986 section
// 5.2.4): "/../admin" sent to https://host/base would reach /admin. Every
// spelling an upstream or a gateway in front of it might decode counts: "."
// or "%2e" in any case, percent-encoding applied more than once, "/" or "\"
// (raw or %2f, %5c) as separators, ";params" after the dots (as Java
// servers read them), "?", "#" or NUL after the dots (once decoded, a
// server that parses the path again ends it there), and the look-alikes of
// ".", "/" and "\" that some decoders and normalisers turn into them (see
// lookalikes). Paths with dot segments that stay inside ("/a/../b") and
// every other path are forwarded byte for byte. Routes call it with the path
// left after their prefix.
func leavesBasePath(p string) bool {
	if !mayHideDots(p) {
		return false
	}
	if p = percentDecoded(p); !isASCII(p) {
		p = lookalikes.Replace(p)
	}
	depth := 0
	for len(p) > 0 {
		i := strings.IndexAny(p, `/\`)
		seg := p
		if i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			p = ""
		}
		if j := strings.IndexAny(seg, ";?#\x00"); j >= 0 {
			seg = seg[:j]
		}
		switch seg {
		case "", ".":
		case "..":
			if depth--; depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

// mayHideDots reports whether p has a byte that can be, or stand for, a dot:
// ".", "%" (an escape) or a non-ASCII byte (a look-alike). Most paths have
// none, and leavesBasePath stops there.
func mayHideDots(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c == '.' || c == '%' || c >= 0x80 {
			return true
		}
	}
	return false
}

func isASCII(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] >= 0x80 {
			return false
		}
	}
	return true
}

// lookalikes maps what some server on the way may read as ".", "/" or "\":
// overlong UTF-8 forms, which old decoders accept (the Tomcat and IIS path
// traversals), and the characters Unicode compatibility normalisation (NFKC)
// turns into them, such as the fullwidth full stop U+FF0E. Built once; only
// leavesBasePath reads it.
var lookalikes = strings.NewReplacer(
	"\xc0\xae", ".", "\xe0\x80\xae", ".", // overlong "."
	"\xc0\xaf", "/", "\xe0\x80\xaf", "/", // overlong "/"
	"\xc1\x9c", `\`, "\xe0\x81\x9c", `\`, // overlong "\"
	"\u2024", ".", "\u2025", "..", "\ufe52", ".", "\uff0e", ".", // one and two dot leader, small and fullwidth full stop
	"\uff0f", "/", "\ufe68", `\`, "\uff3c", `\`, // fullwidth solidus, small and fullwidth reverse solidus
)

// percentDecoded decodes every %XX escape (invalid ones stay as they are),
// again while a round changes something: a few rounds, enough for an escape
// hidden under double or triple encoding ("%252e").
func percentDecoded(p string) string {
	for range 4 {
		if strings.IndexByte(p, '%') < 0 {
			return p
		}
		b := make([]byte, 0, len(p))
		changed := false
		for i := 0; i < len(p); i++ {
			if p[i] == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
				b = append(b, unhex(p[i+1])<<4|unhex(p[i+2]))
				i += 2
				changed = true
				continue
			}
			b = append(b, p[i])
		}
		if !changed {
			return p
		}
		p = string(b)
	}
	return p
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}
