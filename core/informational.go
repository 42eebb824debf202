package core

import (
	"net/http"
	"slices"
	"strings"
)

// 1xx responses. The reverse proxy relays an upstream's 1xx (100 Continue on
// Expect: 100-continue, 103 Early Hints) by adding its headers to the header
// map that already holds the proxy's own (CORS, Connection: close), writing
// the 1xx, and clearing the map. Unchecked, the proxy's own headers go out on
// the 1xx and are missing from the final response, and the 1xx skips the
// response header policy. Here the 1xx gets the upstream's 1xx headers,
// cleaned like a final response's (hop-by-hop, Alt-Svc, the upstream's
// Access-Control-* when the proxy owns CORS), and the final response gets
// the proxy's own headers back.

// keepOwnHeaders notes the headers the proxy set on the response before
// handing it to the reverse proxy, and the policy for upstream headers.
func (rec *record) keepOwnHeaders(clean func(http.Header)) {
	rec.cleanHeader = clean
	if h := rec.Header(); len(h) > 0 {
		rec.own = h.Clone()
	}
}

// writeInformational writes a 1xx with only the upstream's headers, cleaned.
func (rec *record) writeInformational(code int) {
	h := rec.Header()
	info := make(http.Header, len(h))
	for name, values := range h {
		if !rec.ownPending {
			values = values[min(len(rec.own[name]), len(values)):]
		}
		if len(values) > 0 {
			info[name] = values
		}
	}
	removeHopByHop(info)
	if rec.cleanHeader != nil {
		rec.cleanHeader(info)
	}
	clear(h)
	for name, values := range info {
		h[name] = values
	}
	// RFC 9110 section 15.2: no 1xx to an HTTP/1.0 client.
	if rec.req == nil || rec.req.ProtoAtLeast(1, 1) {
		rec.armSend()
		rec.ResponseWriter.WriteHeader(code)
	}
	clear(h)
	rec.ownPending = len(rec.own) > 0
}

// restoreOwnHeaders puts the proxy's own headers back after a 1xx, ahead of
// the upstream's final ones, as they are when no 1xx came.
func (rec *record) restoreOwnHeaders() {
	if !rec.ownPending {
		return
	}
	rec.ownPending = false
	h := rec.Header()
	for name, values := range rec.own {
		h[name] = append(slices.Clip(values), h[name]...)
	}
}

// hopByHopHeaders are removed from relayed 1xx responses, as the reverse
// proxy removes them from final ones (RFC 9110 section 7.6.1).
var hopByHopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHopHeaders {
		delete(h, name)
	}
}
