package core

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// Secret is a setting value that must never be shown, such as an API key.
// Printing it with fmt (any verb), logging it with slog or marshalling it as
// JSON or text gives "[redacted]"; Reveal returns the value. A Config can
// therefore be printed or logged whole without leaking a key.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret value, for the one place that must send it.
func (s Secret) Reveal() string { return string(s) }

// Format implements fmt.Formatter: every verb prints "[redacted]" (or nothing
// for an empty secret).
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.shown()) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.shown()) }

// MarshalText implements encoding.TextMarshaler, for JSON and text encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.shown()), nil }

func (s Secret) shown() string {
	if s == "" {
		return ""
	}
	return redacted
}

// ProxyKey is one entry of OXY_AUTH_KEYS: a key the operator hands out to a
// client instead of the real upstream key.
type ProxyKey struct {
	// Name names the caller in the access log; empty when the entry had none.
	Name string
	// Key is the key the client presents.
	Key Secret
}

// minProxyKeyLen is the shortest proxy key accepted. Proxy keys guard a paid
// upstream key on a public URL and the proxy does not rate-limit failures, so
// a short key could be guessed.
const minProxyKeyLen = 16

// credentialHeaders are the headers in which SDKs send an API key besides
// Authorization: Azure OpenAI SDKs (api-key), Anthropic-style clients
// (x-api-key) and Google's Gemini clients (x-goog-api-key).
var credentialHeaders = []string{"Api-Key", "X-Api-Key", "X-Goog-Api-Key"}

// wsKeyProtocolPrefix marks the WebSocket subprotocol that carries a key.
// Browsers cannot set headers on a WebSocket, so OpenAI's Realtime clients
// offer "openai-insecure-api-key.<key>" in Sec-WebSocket-Protocol instead.
const wsKeyProtocolPrefix = "openai-insecure-api-key."

// maxPresentedKeys bounds the keys read from one request, so that a request
// stuffed with candidates cannot make the proxy hash thousands of them.
const maxPresentedKeys = 8

// azureKeyHostSuffixes are the host suffixes of Azure OpenAI endpoints, which
// take the key in an api-key header rather than as a Bearer token.
// https://learn.microsoft.com/azure/ai-services/openai/reference#authentication
var azureKeyHostSuffixes = []string{".openai.azure.com", ".cognitiveservices.azure.com"}

// defaultKeyHeader returns the header that carries the upstream key for
// target: Api-Key for Azure OpenAI hosts, else Authorization (as a Bearer token).
func defaultKeyHeader(target *url.URL) string {
	if target == nil {
		return "Authorization"
	}
	host := strings.TrimSuffix(strings.ToLower(target.Hostname()), ".")
	for _, suffix := range azureKeyHostSuffixes {
		if strings.HasSuffix(host, suffix) {
			return "Api-Key"
		}
	}
	return "Authorization"
}

// parseProxyKeys parses OXY_AUTH_KEYS: comma-separated entries, each a key or
// name:key. Its problems name the entry by position and never include a key.
func parseProxyKeys(v string) ([]ProxyKey, []string) {
	var keys []ProxyKey
	var problems []string
	seen := map[string]int{}
	for i, entry := range strings.Split(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		pos := i + 1
		var k ProxyKey
		if name, key, ok := strings.Cut(entry, ":"); ok {
			k.Name, k.Key = strings.TrimSpace(name), Secret(strings.TrimSpace(key))
			if !validName(k.Name) {
				problems = append(problems, fmt.Sprintf("entry %d: the name before ':' must be 1-64 of A-Z a-z 0-9 . _ @ -", pos))
				continue
			}
		} else {
			k.Key = Secret(entry)
		}
		switch key := k.Key.Reveal(); {
		case len(key) < minProxyKeyLen:
			problems = append(problems, fmt.Sprintf("entry %d: key shorter than %d characters; generate one with: openssl rand -hex 24", pos, minProxyKeyLen))
		case !validKey(key):
			problems = append(problems, fmt.Sprintf("entry %d: key has a character outside A-Z a-z 0-9 - . _ ~ + / =", pos))
		case seen[key] != 0:
			problems = append(problems, fmt.Sprintf("entry %d: same key as entry %d", pos, seen[key]))
		default:
			seen[key] = pos
			keys = append(keys, k)
		}
	}
	return keys, problems
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !isAlnum(c) && !strings.ContainsRune("._@-", rune(c)) {
			return false
		}
	}
	return true
}

// validKey allows the characters of an RFC 6750 Bearer token, so any key can
// travel in every accepted location (no ':' either, which keeps name:key unambiguous).
func validKey(s string) bool {
	for _, c := range []byte(s) {
		if !isAlnum(c) && !strings.ContainsRune("-._~+/=", rune(c)) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// keyring holds the proxy keys as SHA-256 digests, with the label logged for each.
type keyring struct {
	digests [][sha256.Size]byte
	labels  []string
	// compare is subtle.ConstantTimeCompare; a test counts its calls.
	compare func(a, b []byte) int
}

func newKeyring(keys []ProxyKey) *keyring {
	if len(keys) == 0 {
		return nil
	}
	k := &keyring{compare: subtle.ConstantTimeCompare}
	for i, pk := range keys {
		k.digests = append(k.digests, sha256.Sum256([]byte(pk.Key.Reveal())))
		k.labels = append(k.labels, keyLabel(pk, i))
	}
	return k
}

// match returns the label of the proxy key among presented, if any. It
// compares fixed-length digests in constant time against every key, so the
// timing reveals neither a key's bytes nor its length.
func (k *keyring) match(presented []string) (label string, ok bool) {
	found := -1
	for _, p := range presented {
		d := sha256.Sum256([]byte(p))
		for i := range k.digests {
			if k.compare(d[:], k.digests[i][:]) == 1 {
				found = i
			}
		}
	}
	if found < 0 {
		return "", false
	}
	return k.labels[found], true
}

// presentedKeys returns the keys a client sent, wherever its SDK put them:
// Authorization: Bearer, the credential headers, the WebSocket key
// subprotocol, and the key parameter of the raw query (Gemini's REST form). Header names are matched case-insensitively, so header maps
// built by hand (serverless adapters) are read too. At most maxPresentedKeys
// are returned.
func presentedKeys(h http.Header, rawQuery string) []string {
	var keys []string
	add := func(k string) {
		if k = strings.TrimSpace(k); k != "" && len(keys) < maxPresentedKeys {
			keys = append(keys, k)
		}
	}
	for name, values := range h {
		for _, v := range values {
			switch {
			case strings.EqualFold(name, "Authorization"):
				if scheme, token, ok := strings.Cut(strings.TrimSpace(v), " "); ok && strings.EqualFold(scheme, "Bearer") {
					add(token)
				}
			case isCredentialHeader(name):
				add(v)
			case strings.EqualFold(name, "Sec-WebSocket-Protocol"):
				for _, proto := range strings.Split(v, ",") {
					if key, ok := strings.CutPrefix(strings.TrimSpace(proto), wsKeyProtocolPrefix); ok {
						add(key)
					}
				}
			}
		}
	}
	queryParamValues(rawQuery, keyQueryParam, maxPresentedKeys-len(keys), add)
	return keys
}

func isCredentialHeader(name string) bool {
	for _, c := range credentialHeaders {
		if strings.EqualFold(name, c) {
			return true
		}
	}
	return false
}

// removeCredentials deletes every credential a client can send from h:
// Authorization, the credential headers, and the key entry of
// Sec-WebSocket-Protocol (the other subprotocols are kept).
func removeCredentials(h http.Header) {
	for name, values := range h {
		switch {
		case strings.EqualFold(name, "Authorization"), isCredentialHeader(name):
			delete(h, name)
		case strings.EqualFold(name, "Sec-WebSocket-Protocol"):
			if kept := withoutKeyProtocol(values); len(kept) > 0 {
				h[name] = kept
			} else {
				delete(h, name)
			}
		}
	}
}

// withoutKeyProtocol returns the Sec-WebSocket-Protocol values without any
// openai-insecure-api-key.* entry; values left empty are dropped.
func withoutKeyProtocol(values []string) []string {
	var out []string
	for _, v := range values {
		var protos []string
		for _, proto := range strings.Split(v, ",") {
			proto = strings.TrimSpace(proto)
			if proto != "" && !strings.HasPrefix(proto, wsKeyProtocolPrefix) {
				protos = append(protos, proto)
			}
		}
		if len(protos) > 0 {
			out = append(out, strings.Join(protos, ", "))
		}
	}
	return out
}

// keyHeaderForbidden are header names that cannot carry the upstream key:
// hop-by-hop and framing headers, and ones the proxy manages itself.
var keyHeaderForbidden = []string{
	"Connection", "Content-Length", "Content-Type", "Cookie", "Host", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Sec-Websocket-Protocol", "Sec-Websocket-Key",
}

// checkKeyHeader validates OXY_UPSTREAM_API_KEY_HEADER.
func checkKeyHeader(name string) error {
	if name == "" {
		return fmt.Errorf("empty, want a header name such as Authorization or api-key")
	}
	for _, c := range []byte(name) {
		if !isAlnum(c) && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return fmt.Errorf("not a header name, want e.g. Authorization, api-key or x-api-key")
		}
	}
	for _, f := range keyHeaderForbidden {
		if strings.EqualFold(name, f) {
			return fmt.Errorf("cannot carry the key, want e.g. Authorization, api-key or x-api-key")
		}
	}
	// Client-address headers are rewritten or appended to by every proxy
	// and gateway on the way, and written to their logs: the key would be
	// spread, or lost. Platform prefixes are platform-owned.
	lower := strings.ToLower(name)
	for _, f := range clientAddressHeaders {
		if strings.EqualFold(name, f) || strings.HasPrefix(lower, "x-forwarded-") {
			return fmt.Errorf("is a client-address header that proxies rewrite and log, want e.g. Authorization, api-key or x-api-key")
		}
	}
	for _, prefix := range alwaysStripPrefixes {
		if strings.HasPrefix(lower, prefix) {
			return fmt.Errorf("is a platform header (%s*), want e.g. Authorization, api-key or x-api-key", prefix)
		}
	}
	return nil
}
