package core

import (
	"net/url"
	"strings"
)

// The proxy never parses and re-encodes a client's query (ReverseProxy would
// re-encode one it finds ambiguous, and vendors sign or compare raw bytes).
// The two helpers below read and drop one parameter by scanning the raw
// query's &-separated pairs, so every other byte stays where it was.

// queryParamValues calls visit with the decoded value of each name=value pair
// of the raw query whose decoded name is name, at most limit times.
func queryParamValues(raw, name string, limit int, visit func(value string)) {
	for raw != "" && limit > 0 {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(pair, "=")
		if !queryNameIs(k, name) {
			continue
		}
		if dec, err := url.QueryUnescape(v); err == nil {
			v = dec
		}
		visit(v)
		limit--
	}
}

// withoutQueryParam returns the raw query without the pairs whose decoded
// name is name ("key=1", "key", "%6Bey=1"); the remaining pairs and their
// separators are kept byte for byte. It allocates only when it removes one.
func withoutQueryParam(raw, name string) string {
	if raw == "" || (!strings.Contains(raw, name) && !strings.Contains(raw, "%")) {
		return raw
	}
	var b strings.Builder
	removed, first := false, true
	for rest := raw; ; {
		pair, next, more := strings.Cut(rest, "&")
		k, _, _ := strings.Cut(pair, "=")
		if queryNameIs(k, name) {
			removed = true
		} else {
			if !first {
				b.WriteByte('&')
			}
			b.WriteString(pair)
			first = false
		}
		if !more {
			break
		}
		rest = next
	}
	if !removed {
		return raw
	}
	return b.String()
}

// queryNameIs reports whether the raw parameter name k decodes to name, so
// that an escaped spelling cannot slip a credential past the proxy.
func queryNameIs(k, name string) bool {
	if k == name {
		return true
	}
	if !strings.ContainsAny(k, "%+") {
		return false
	}
	dec, err := url.QueryUnescape(k)
	return err == nil && dec == name
}
