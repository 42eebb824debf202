package core

import "strings"

// redactURL returns v, a setting value that may be a URL, with the parts that
// can carry a secret replaced by "[redacted]": the userinfo
// ("https://user:pass@host"), every query value ("?key=..."), bare query
// items and the fragment. It works on the text, so a value that does not
// parse as a URL is redacted too. Values that are not URLs come back as they
// are. Every settings message that prints a value goes through it.
func redactURL(v string) string {
	scheme, rest := "", v
	if i := strings.Index(v, "://"); i >= 0 {
		scheme, rest = v[:i+3], v[i+3:]
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
		rest = redacted + rest[at:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i] + redactQueryAndFragment(rest[i:])
	}
	return scheme + rest
}

// redactQueryAndFragment redacts s, which starts with "?" or "#".
func redactQueryAndFragment(s string) string {
	query, fragment, hasFragment := s, "", false
	if i := strings.IndexByte(s, '#'); i >= 0 {
		query, fragment, hasFragment = s[:i], s[i+1:], true
	}
	var b strings.Builder
	if query != "" {
		b.WriteByte('?')
		for i, item := range strings.Split(query[1:], "&") {
			if i > 0 {
				b.WriteByte('&')
			}
			name, value, ok := strings.Cut(item, "=")
			switch {
			case ok && value != "":
				b.WriteString(name + "=" + redacted)
			case ok:
				b.WriteString(name + "=")
			case item != "":
				b.WriteString(redacted)
			}
		}
	}
	if hasFragment {
		b.WriteByte('#')
		if fragment != "" {
			b.WriteString(redacted)
		}
	}
	return b.String()
}

// quoteFree cuts msg at its first double quote: the URL parser's messages
// quote the offending part of the value (`invalid URL escape "%zz"`), which
// may be a piece of a password.
func quoteFree(msg string) string {
	if i := strings.IndexByte(msg, '"'); i >= 0 {
		return strings.TrimSpace(msg[:i])
	}
	return msg
}
