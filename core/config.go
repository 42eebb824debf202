package core

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// LookupFunc reports the value of an environment variable, like os.LookupEnv.
type LookupFunc func(name string) (string, bool)

// Config is the proxy's settings, built once from the environment by FromEnv
// and validated before anything listens.
type Config struct {
	// Target is the upstream base URL; its path, if any, prefixes every request path.
	Target *url.URL
	// Host is the listen host; empty means all interfaces.
	Host string
	// Port is the listen port.
	Port int
	// StripHeaderPrefixes are lower-case header-name prefixes removed from every
	// inbound request: the user's OXY_HOP_HEADER_PREFIX, the platform's preset
	// and the credential-bearing platform prefixes that are always removed.
	StripHeaderPrefixes []string
	// StripHeaders are header names (canonical form) removed from every inbound request.
	StripHeaders []string
	// ForwardClientIP sends the client's address upstream in X-Forwarded-For.
	ForwardClientIP bool
	// RequestTimeout bounds a whole proxied request; zero means no limit.
	RequestTimeout time.Duration
	// ClientBodyTimeout bounds each wait for the next bytes of a request
	// body from the client (nginx's client_body_timeout); zero means none.
	ClientBodyTimeout time.Duration
	// SendTimeout bounds each blocked write to the client (nginx's
	// send_timeout); zero means none. A silent upstream is never cut by it.
	SendTimeout time.Duration
	// DialTimeout bounds the upstream TCP connect and the TLS handshake each.
	DialTimeout time.Duration
	// ShutdownGrace is how long in-flight requests may run after SIGTERM.
	ShutdownGrace time.Duration
	// MaxConnections caps the client connections an HTTP server build holds
	// open at once; zero means no cap.
	MaxConnections int
	// LogLevel is the minimum level logged.
	LogLevel slog.Level
	// LogFormat is "text" or "json".
	LogFormat string

	// AuthKeys are the proxy keys a client must present (OXY_AUTH_KEYS);
	// none means no key is required.
	AuthKeys []ProxyKey
	// UpstreamAPIKeys are the real keys sent upstream in place of the
	// client's credentials (OXY_UPSTREAM_API_KEY, comma-separated), taken in
	// turn; none passes the client's on.
	UpstreamAPIKeys []Secret
	// UpstreamAPIKeyHeader carries UpstreamAPIKeys: "Authorization" (as a
	// Bearer token) or a header holding the bare key, such as "Api-Key".
	UpstreamAPIKeyHeader string
	// CORSOrigins are the browser origins allowed, or "*" (OXY_CORS_ORIGINS);
	// none turns CORS handling off.
	CORSOrigins []string
	// HealthPath is the local health route; empty turns it off.
	HealthPath string
	// AllowCIDRs are the client networks allowed (OXY_ALLOW_CIDRS); none
	// allows every address.
	AllowCIDRs []netip.Prefix
	// Routes are the upstreams of OXY_ROUTES, in the order given, each
	// mounted at /Name; every other path goes to Target (DefaultRoute).
	Routes []Route

	// StreamUsage adds stream_options.include_usage to streamed chat
	// completion requests that lack it (OXY_STREAM_USAGE), so that their
	// usage can be metered.
	StreamUsage bool
	// Limits are the budgets of the proxy keys that have one, by the key's
	// label (its name, or key#N), with OXY_LIMITS' "*" already resolved.
	Limits map[string]Limits
	// RedisURL, when set, moves the budgets' counters to Redis (OXY_REDIS_URL),
	// shared by every instance. It can hold a password: it is a Secret.
	RedisURL Secret
	// LimitsFailClosed refuses requests with 503 while the limits' store
	// cannot be reached (OXY_LIMITS_FAIL_CLOSED); off, they pass unlimited.
	LimitsFailClosed bool
	// MetricsAddr is the host:port of the Prometheus metrics listener
	// (OXY_METRICS_ADDR); empty turns metrics off.
	MetricsAddr string

	// Retries is how many times a refused or failed upstream attempt is
	// retried with another key (OXY_RETRIES).
	Retries int
	// RetryMaxBody is the largest request body replayed by a retry
	// (OXY_RETRY_MAX_BODY).
	RetryMaxBody int64
	// KeyCooldown is how long a key the upstream rejected rests (OXY_KEY_COOLDOWN).
	KeyCooldown time.Duration

	// Extra holds the validated values of the platform's own settings, by name.
	Extra map[string]string
}

// Setting describes one environment variable: its name, default and meaning,
// as listed by -h.
type Setting struct {
	Name    string
	Default string
	Usage   string
	// Check, if set, validates a value; FromEnv reports its error.
	Check func(value string) error
	// Secret settings (keys) never have their value printed in an error.
	Secret bool
}

// alwaysStripPrefixes are header prefixes that carry platform credentials or
// account data (Aliyun FC STS keys, Tencent SCF role keys, the Lambda adapter's
// IAM context). They are removed in every build, whatever the settings, so a
// binary deployed on the "wrong" platform still never leaks them.
var alwaysStripPrefixes = []string{"x-fc-", "x-scf-", "x-golambdaproxy-"}

// Settings lists the settings every build understands, with their defaults.
var Settings = []Setting{
	{Name: "OXY_TARGET", Default: "https://api.openai.com", Usage: "upstream base URL (an Azure OpenAI endpoint or any base path works too)"},
	{Name: "OXY_PORT", Default: "9000", Usage: "listen port (1-65535)"},
	{Name: "OXY_HOST", Default: "0.0.0.0", Usage: "listen address; set 127.0.0.1 to listen on loopback only"},
	{Name: "OXY_HOP_HEADER_PREFIX", Default: "", Usage: "comma-separated, case-insensitive prefixes of inbound headers that are not forwarded"},
	{Name: "OXY_FORWARD_CLIENT_IP", Default: "false", Usage: "send the client's IP upstream in X-Forwarded-For (off: the upstream never sees it)"},
	{Name: "OXY_REQUEST_TIMEOUT", Default: "0", Usage: "limit on a whole request, e.g. 10m (0: none; long answers and streams need none)"},
	{Name: "OXY_DIAL_TIMEOUT", Default: "10s", Usage: "limit on connecting to the upstream, and on the TLS handshake"},
	{Name: "OXY_CLIENT_BODY_TIMEOUT", Default: "60s", Usage: "limit on each wait for more of a request body from the client (0: none)"},
	{Name: "OXY_SEND_TIMEOUT", Default: "60s", Usage: "limit on each write to a client that stopped reading (0: none); a silent upstream is never cut"},
	{Name: "OXY_SHUTDOWN_GRACE", Default: "30s", Usage: "on SIGTERM/SIGINT, how long in-flight requests and streams may finish (a second signal exits at once)"},
	{Name: "OXY_MAX_CONNECTIONS", Default: "0", Usage: "HTTP server builds: most client connections open at once; more wait to be accepted (0: no cap)"},
	{Name: "OXY_LOG_LEVEL", Default: "info", Usage: "debug, info, warn or error"},
	{Name: "OXY_LOG_FORMAT", Default: "text", Usage: "text or json"},
	{Name: "OXY_AUTH_KEYS", Default: "", Usage: "comma-separated proxy keys clients must send (name:key names the caller in the log); needs OXY_UPSTREAM_API_KEY", Secret: true},
	{Name: "OXY_UPSTREAM_API_KEY", Default: "", Usage: "the real API key, sent upstream in place of the client's key; several, comma-separated, are taken in turn", Secret: true},
	{Name: "OXY_UPSTREAM_API_KEY_HEADER", Default: "", Usage: "header for the real key (default: api-key for Azure OpenAI hosts, else Authorization: Bearer)"},
	{Name: "OXY_ROUTES", Default: "", Usage: "comma-separated routes, each served at /NAME: a preset (" + strings.Join(presetNames(), ", ") + ") or NAME=URL"},
	{Name: "OXY_UPSTREAM_API_KEY_<NAME>", Default: "", Usage: "the real API key of route NAME (upper-cased, - as _), sent in that vendor's way; several, comma-separated, are taken in turn", Secret: true},
	{Name: "OXY_RETRIES", Default: strconv.Itoa(DefaultRetries), Usage: "retries of a refused or failed upstream attempt, with another real key, before anything reaches the client (0-10)"},
	{Name: "OXY_RETRY_MAX_BODY", Default: "1MiB", Usage: "largest request body kept in memory for a retry (bytes, KiB or MiB); larger bodies are never retried"},
	{Name: "OXY_KEY_COOLDOWN", Default: "10m", Usage: "how long a real key rests after the upstream rejects it (401, 403, out of quota)"},
	{Name: "OXY_CORS_ORIGINS", Default: "", Usage: "comma-separated browser origins allowed, or * (empty: CORS off, the upstream's headers pass)"},
	{Name: "OXY_HEALTH_PATH", Default: "/healthz", Usage: "local health route, no key needed (empty: off)"},
	{Name: "OXY_ALLOW_CIDRS", Default: "", Usage: "comma-separated client CIDRs or IPs allowed, by socket address (empty: all)"},
	{Name: "OXY_METRICS_ADDR", Default: "", Usage: "host:port of a separate Prometheus /metrics listener, e.g. 127.0.0.1:9464 (empty: off; servers, SCF web functions and FC only)"},
	{Name: "OXY_STREAM_USAGE", Default: "false", Usage: "add stream_options.include_usage to streamed chat completion requests that lack it, so their tokens are metered (clients get one more chunk)"},
	{Name: "OXY_LIMITS", Default: "", Usage: "budgets per proxy-key name or *, e.g. alice=rpm:60/tpm:200000/concurrent:4/tpd:5000000, *=rpm:20; needs OXY_AUTH_KEYS"},
	{Name: "OXY_REDIS_URL", Default: "", Usage: "redis://[:password@]host[:port][/db] or rediss://... to share the budgets' counters between instances (empty: in memory)", Secret: true},
	{Name: "OXY_LIMITS_FAIL_CLOSED", Default: "false", Usage: "while Redis cannot be reached, refuse requests with 503 instead of serving them unlimited"},
}

// Defaults are a platform's presets: values used where the environment is silent,
// and header rules added to (never replacing) the user's.
type Defaults struct {
	// Port replaces OXY_PORT's default when non-zero.
	Port int
	// StripHeaderPrefixes are added to OXY_HOP_HEADER_PREFIX.
	StripHeaderPrefixes []string
	// StripHeaders are exact header names always removed.
	StripHeaders []string
	// Extra are the platform's own settings; FromEnv checks them and stores
	// their values in Config.Extra.
	Extra []Setting
}

// Options tell FromEnv what else to check.
type Options struct {
	// Defaults are the platform's presets.
	Defaults Defaults
	// Environ, like os.Environ, lets FromEnv report OXY_ variables it does not
	// know (a typo otherwise silently keeps a default). Nil skips the check.
	Environ []string
}

// AllSettings returns the core settings followed by the platform's own, with
// the platform's defaults applied, for -h and for unknown-name checks.
func AllSettings(d Defaults) []Setting {
	all := make([]Setting, 0, len(Settings)+len(d.Extra))
	for _, s := range Settings {
		if s.Name == "OXY_PORT" && d.Port != 0 {
			s.Default = strconv.Itoa(d.Port)
		}
		all = append(all, s)
	}
	return append(all, d.Extra...)
}

// FromEnv builds a Config from lookup, applying the platform's defaults.
// Every invalid setting is reported in one error, each line naming the
// variable, the problem and what is wanted.
func FromEnv(lookup LookupFunc, opts Options) (Config, error) {
	p := parser{lookup: lookup, defaults: map[string]string{}}
	settings := AllSettings(opts.Defaults)
	for _, s := range settings {
		p.defaults[s.Name] = s.Default
	}
	var c Config
	c.Target = p.target("OXY_TARGET")
	c.Port = p.port("OXY_PORT")
	c.Host = p.host("OXY_HOST")
	c.StripHeaderPrefixes = mergePrefixes(p.list("OXY_HOP_HEADER_PREFIX"), opts.Defaults.StripHeaderPrefixes, alwaysStripPrefixes)
	c.StripHeaders = canonicalNames(opts.Defaults.StripHeaders)
	c.ForwardClientIP = p.boolean("OXY_FORWARD_CLIENT_IP")
	c.RequestTimeout = p.duration("OXY_REQUEST_TIMEOUT", true)
	c.DialTimeout = p.duration("OXY_DIAL_TIMEOUT", false)
	c.ClientBodyTimeout = p.duration("OXY_CLIENT_BODY_TIMEOUT", true)
	c.SendTimeout = p.duration("OXY_SEND_TIMEOUT", true)
	c.ShutdownGrace = p.duration("OXY_SHUTDOWN_GRACE", true)
	c.MaxConnections = p.count("OXY_MAX_CONNECTIONS")
	c.LogLevel = p.level("OXY_LOG_LEVEL")
	c.LogFormat = p.oneOf("OXY_LOG_FORMAT", "text", "json")
	p.access(&c)
	c.StreamUsage = p.boolean("OXY_STREAM_USAGE")
	p.limits(&c)
	p.retries(&c)
	c.MetricsAddr = p.metricsAddr("OXY_METRICS_ADDR", c.Port)
	c.Extra = map[string]string{}
	for _, s := range opts.Defaults.Extra {
		v := p.get(s.Name)
		if s.Check != nil {
			if err := s.Check(v); err != nil {
				if s.Secret {
					p.problems = append(p.problems, s.Name+": "+err.Error())
				} else {
					p.fail(s.Name, v, err.Error())
				}
				continue
			}
		}
		c.Extra[s.Name] = v
	}
	p.unknown(opts.Environ, settings, p.orphanRouteKeys(opts.Environ, &c))
	if len(p.problems) > 0 {
		return Config{}, &ConfigError{Problems: p.problems}
	}
	return c, nil
}

// DefaultRoute returns the route of OXY_TARGET and OXY_UPSTREAM_API_KEY,
// which serves every path that no entry of Routes claims.
func (c Config) DefaultRoute() Route {
	r := Route{Name: DefaultRouteName, Target: c.Target, Keys: c.UpstreamAPIKeys, KeySetting: "OXY_UPSTREAM_API_KEY"}
	if c.UpstreamAPIKeyHeader != "" {
		r.Credential = credentialForHeader(c.UpstreamAPIKeyHeader)
	} else {
		r.Credential = defaultCredential(c.Target)
	}
	return r
}

// AllRoutes returns the default route followed by Routes.
func (c Config) AllRoutes() []Route {
	return append([]Route{c.DefaultRoute()}, c.Routes...)
}

// ConfigError lists every invalid setting found by FromEnv.
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	return "invalid configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

type parser struct {
	lookup   LookupFunc
	defaults map[string]string
	problems []string
}

// get returns the variable's value, or its default when unset. A variable set
// to the empty string counts as set (OXY_HOP_HEADER_PREFIX="" is meaningful).
func (p *parser) get(name string) string {
	if v, ok := p.lookup(name); ok {
		return strings.TrimSpace(v)
	}
	return p.defaults[name]
}

// fail records a problem with a setting, showing its value with any URL
// credentials and query values redacted.
func (p *parser) fail(name, value, problem string) {
	p.problems = append(p.problems, fmt.Sprintf("%s=%q: %s", name, redactURL(value), problem))
}

func (p *parser) target(name string) *url.URL {
	v := p.get(name)
	u, err := ParseTarget(v)
	if err != nil {
		p.fail(name, v, err.Error())
		return nil
	}
	return u
}

// ParseTarget checks an upstream base URL: http or https, a host, no query or
// fragment, no credentials. A trailing slash is dropped so that joining paths
// never produces "//".
func ParseTarget(v string) (*url.URL, error) {
	if v == "" {
		return nil, errors.New("empty, want https://host")
	}
	if !strings.Contains(v, "://") {
		return nil, errors.New("missing scheme, want https://host")
	}
	u, err := url.Parse(v)
	if err != nil {
		return nil, fmt.Errorf("not a URL (%s), want https://host", quoteFree(unwrapURLError(err).Error()))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("scheme %q not supported, want https://host or http://host", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("missing host, want https://host")
	case u.User != nil:
		return nil, errors.New("credentials in the URL are not supported, want https://host")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, errors.New("query or fragment not supported, want https://host/optional/base/path")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, errors.New("port must be 1-65535, want https://host:port")
		}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if u.RawPath != "" {
		u.RawPath = strings.TrimRight(u.RawPath, "/")
	}
	return u, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// port parses a port number: decimal digits only (strconv.Atoi alone would
// take "+27990").
func (p *parser) port(name string) int {
	v := p.get(name)
	n, err := strconv.Atoi(v)
	if err != nil || !allDigits(v) || n < 1 || n > 65535 {
		p.fail(name, v, "must be a port number 1-65535")
		return 0
	}
	return n
}

// host parses the listen host: an IP address (an IPv6 one may be in
// brackets, both or neither) or a host name of letters, digits, "-" and ".".
func (p *parser) host(name string) string {
	v := p.get(name)
	h := v
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
		if !strings.Contains(h, ":") {
			h = "[" // brackets are for IPv6 addresses only
		}
	}
	if v != "" && net.ParseIP(h) == nil && !isHostName(h) {
		p.fail(name, v, "must be a host name or IP address without a port, want e.g. 0.0.0.0 or 127.0.0.1")
		return ""
	}
	return h
}

// isHostName reports whether s is a DNS name: dot-separated labels of
// letters, digits and inner hyphens, each 1-63 bytes.
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !isAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

func allDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// count parses a non-negative whole number (digits only).
func (p *parser) count(name string) int {
	v := p.get(name)
	n, err := strconv.Atoi(v)
	if err != nil || !allDigits(v) {
		p.fail(name, v, "must be a whole number, 0 for none")
		return 0
	}
	return n
}

// metricsAddr reads a listen address with a port, which must not be the
// proxy's own: metrics never share the public port.
func (p *parser) metricsAddr(name string, proxyPort int) string {
	v := p.get(name)
	if v == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(v)
	n, perr := strconv.Atoi(port)
	switch {
	case err != nil || perr != nil || n < 1 || n > 65535 || strings.ContainsAny(host, " /"):
		p.fail(name, v, "must be host:port, want e.g. 127.0.0.1:9464 or :9464")
	case n == proxyPort:
		p.fail(name, v, "must not use the proxy's own port (OXY_PORT): metrics get a separate listener, want e.g. 127.0.0.1:9464")
	}
	return v
}

func (p *parser) list(name string) []string {
	var out []string
	for _, item := range strings.Split(p.get(name), ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func (p *parser) boolean(name string) bool {
	v := p.get(name)
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(name, v, "must be true or false")
	}
	return b
}

// minRequestLimit is the shortest limit accepted on a request, its connect,
// or its waits on the client: below a second, every request would fail
// ("1ns" is a slip, not a policy).
const minRequestLimit = time.Second

// duration parses a duration. zeroOK allows 0, which means "no limit" (or,
// for the shutdown grace, "at once"). Limits on requests (every setting but
// OXY_SHUTDOWN_GRACE) must be at least minRequestLimit.
func (p *parser) duration(name string, zeroOK bool) time.Duration {
	v := p.get(name)
	if v == "0" && zeroOK {
		return 0
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		p.fail(name, v, "must be a duration such as 30s or 5m")
	case d < 0 || (d == 0 && !zeroOK):
		p.fail(name, v, "must be a positive duration such as 30s")
	case d == 0:
	case d < minRequestLimit && name != "OXY_SHUTDOWN_GRACE":
		want := "at least 1s"
		if zeroOK {
			want = "0 (no limit) or at least 1s"
		}
		p.fail(name, v, "too short, every request would fail; want "+want)
	}
	return d
}

func (p *parser) level(name string) slog.Level {
	v := p.get(name)
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		p.fail(name, v, "must be debug, info, warn or error")
	}
	return l
}

func (p *parser) oneOf(name string, allowed ...string) string {
	v := strings.ToLower(p.get(name))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	p.fail(name, v, "must be one of "+strings.Join(allowed, ", "))
	return allowed[0]
}

// unknown reports OXY_ variables in environ that no setting declares, with the
// closest known name as a hint.
func (p *parser) unknown(environ []string, settings []Setting, judged map[string]bool) {
	known := map[string]bool{}
	for _, s := range settings {
		known[s.Name] = true
	}
	var names []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(strings.ToUpper(name), "OXY_") && !known[name] && !judged[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		// The value is not shown: a misspelt key setting would print the key.
		msg := name + ": unknown setting"
		if best := closest(name, settings); best != "" {
			msg += fmt.Sprintf(", did you mean %s?", best)
		} else {
			msg += "; run with -h to list the settings"
		}
		p.problems = append(p.problems, msg)
	}
}

// closest returns the known name nearest to name by edit distance, if near enough.
func closest(name string, settings []Setting) string {
	names := make([]string, len(settings))
	for i, s := range settings {
		names[i] = s.Name
	}
	return closestOf(strings.ToUpper(name), names, 4)
}

// closestOf returns the candidate nearest to name by edit distance, if it is
// at most maxDist (or a third of name's length) away.
func closestOf(name string, candidates []string, maxDist int) string {
	best, bestDist := "", 1<<30
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	if bestDist <= maxDist || bestDist <= len(name)/3 {
		return best
	}
	return ""
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of two neighbours (the commonest typo,
// "rmp" for "rpm") each cost 1.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

func mergePrefixes(lists ...[]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range lists {
		for _, p := range l {
			p = strings.ToLower(strings.TrimSpace(p))
			if p != "" && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

func canonicalNames(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, canonical(n))
	}
	return out
}
