package core

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Budgets per proxy key (OXY_LIMITS). Each proxy-key name may have any of
// four limits, and "*" gives them to every key without its own entry:
//
//	OXY_LIMITS=alice=rpm:60/tpm:200000/concurrent:4/tpd:5000000, *=rpm:20
//
// Entries are comma-separated NAME=LIMITS; a NAME is a name from
// OXY_AUTH_KEYS (name:key), key#N for its N-th unnamed key, or *; LIMITS are
// KIND:NUMBER joined by "/". The characters were chosen to need no quoting in
// a shell and to read well in a cloud console's environment-variable field.
// A key with its own entry gets only that entry's limits: "*" is not merged in.

// LimitKind names one kind of limit, as written in OXY_LIMITS and in the
// oxy_limited_total metric's limit label.
type LimitKind string

// The kinds of limit.
const (
	// LimitRPM counts requests per clock minute.
	LimitRPM LimitKind = "rpm"
	// LimitTPM counts metered tokens (input plus output) per clock minute.
	LimitTPM LimitKind = "tpm"
	// LimitConcurrent counts requests in flight at once.
	LimitConcurrent LimitKind = "concurrent"
	// LimitTPD counts metered tokens per UTC day.
	LimitTPD LimitKind = "tpd"
)

// limitKinds is every kind, in the order they are checked and reported.
var limitKinds = []LimitKind{LimitTPD, LimitRPM, LimitTPM, LimitConcurrent}

// LimitKinds returns every kind of limit, in the order they are checked.
func LimitKinds() []LimitKind { return append([]LimitKind(nil), limitKinds...) }

// maxLimit bounds a limit's number: far above any real budget, and small
// enough that counters never overflow when tokens are added to them.
const maxLimit = 1_000_000_000_000_000

// Limits are one proxy key's budget; a zero field is no limit of that kind.
type Limits struct {
	// RPM is the requests allowed per clock minute.
	RPM int64
	// TPM is the metered tokens allowed per clock minute.
	TPM int64
	// Concurrent is the requests allowed in flight at once.
	Concurrent int64
	// TPD is the metered tokens allowed per UTC day.
	TPD int64
}

// IsZero reports whether l limits nothing.
func (l Limits) IsZero() bool { return l == Limits{} }

// Of returns l's limit of kind k (0: none).
func (l Limits) Of(k LimitKind) int64 {
	switch k {
	case LimitRPM:
		return l.RPM
	case LimitTPM:
		return l.TPM
	case LimitConcurrent:
		return l.Concurrent
	case LimitTPD:
		return l.TPD
	}
	return 0
}

func (l *Limits) set(k LimitKind, n int64) {
	switch k {
	case LimitRPM:
		l.RPM = n
	case LimitTPM:
		l.TPM = n
	case LimitConcurrent:
		l.Concurrent = n
	case LimitTPD:
		l.TPD = n
	}
}

// String formats l as it is written in OXY_LIMITS.
func (l Limits) String() string {
	var parts []string
	for _, k := range []LimitKind{LimitRPM, LimitTPM, LimitConcurrent, LimitTPD} {
		if n := l.Of(k); n > 0 {
			parts = append(parts, string(k)+":"+strconv.FormatInt(n, 10))
		}
	}
	return strings.Join(parts, "/")
}

// parseLimits parses OXY_LIMITS against the proxy keys' labels (names, or
// key#N). Its problems never print a key: an entry naming a key by its value
// is reported by position only.
func parseLimits(v string, keys []ProxyKey) (map[string]Limits, []string) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	labels := keyLabels(keys)
	if len(labels) == 0 {
		return nil, []string{"set without OXY_AUTH_KEYS; budgets belong to proxy keys, so hand out keys first " +
			"(OXY_AUTH_KEYS=name:key,...) and name them here"}
	}
	known := map[string]bool{"*": true}
	for _, l := range labels {
		known[l] = true
	}
	secret := map[string]bool{}
	for _, k := range keys {
		secret[k.Key.Reveal()] = true
	}
	var problems []string
	byName := map[string]Limits{}
	for i, entry := range strings.Split(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		pos := i + 1
		name, spec, ok := strings.Cut(entry, "=")
		name, spec = strings.TrimSpace(name), strings.TrimSpace(spec)
		switch {
		case secret[name] || secret[spec] || containsSecret(entry, secret):
			problems = append(problems, fmt.Sprintf("entry %d holds a proxy key itself; write the key's name (from OXY_AUTH_KEYS name:key) or key#N", pos))
			continue
		case !ok:
			problems = append(problems, fmt.Sprintf("entry %d %q: want NAME=KIND:NUMBER/..., e.g. alice=rpm:60/tpd:5000000", pos, entry))
			continue
		case !known[name]:
			msg := fmt.Sprintf("entry %d: %q is not a proxy-key name", pos, name)
			if best := nearest(name, labels); best != "" {
				msg += fmt.Sprintf(", did you mean %q?", best)
			}
			problems = append(problems, msg+"; names are those of OXY_AUTH_KEYS (name:key), key#N for the N-th unnamed key, or *")
			continue
		}
		if _, dup := byName[name]; dup {
			problems = append(problems, fmt.Sprintf("entry %d: %q has limits already; give each name one entry", pos, name))
			continue
		}
		l, specProblems := parseLimitSpec(spec)
		for _, p := range specProblems {
			problems = append(problems, fmt.Sprintf("entry %d (%s): %s", pos, name, p))
		}
		if len(specProblems) == 0 {
			byName[name] = l
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	// Resolve "*" once, at start-up: each key's own budget, by label.
	out := map[string]Limits{}
	for _, label := range labels {
		if l, ok := byName[label]; ok {
			out[label] = l
		} else if l, ok := byName["*"]; ok {
			out[label] = l
		}
	}
	return out, nil
}

func containsSecret(s string, secret map[string]bool) bool {
	for k := range secret {
		if k != "" && strings.Contains(s, k) {
			return true
		}
	}
	return false
}

// parseLimitSpec parses KIND:NUMBER/KIND:NUMBER...
func parseLimitSpec(spec string) (Limits, []string) {
	var l Limits
	var problems []string
	if spec == "" {
		return l, []string{"no limits after '=', want e.g. rpm:60/tpm:200000/concurrent:4/tpd:5000000"}
	}
	kinds := make([]string, len(limitKinds))
	for i, k := range limitKinds {
		kinds[i] = string(k)
	}
	seen := map[LimitKind]bool{}
	for _, part := range strings.Split(spec, "/") {
		part = strings.TrimSpace(part)
		ks, ns, ok := strings.Cut(part, ":")
		kind := LimitKind(strings.ToLower(strings.TrimSpace(ks)))
		ns = strings.TrimSpace(ns)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%q: want KIND:NUMBER, e.g. rpm:60", part))
			continue
		case !known(kind):
			msg := fmt.Sprintf("%q is not a kind of limit", ks)
			if best := nearest(string(kind), kinds); best != "" {
				msg += fmt.Sprintf(", did you mean %s?", best)
			}
			problems = append(problems, msg+"; want rpm, tpm, concurrent or tpd")
			continue
		case seen[kind]:
			problems = append(problems, fmt.Sprintf("%s given twice", kind))
			continue
		}
		seen[kind] = true
		n, err := strconv.ParseInt(ns, 10, 64)
		if err != nil || n < 1 || n > maxLimit {
			problems = append(problems, fmt.Sprintf("%s:%s: want a whole number from 1 to %d (omit a kind for no limit)", kind, ns, int64(maxLimit)))
			continue
		}
		l.set(kind, n)
	}
	return l, problems
}

func known(k LimitKind) bool {
	for _, kk := range limitKinds {
		if k == kk {
			return true
		}
	}
	return false
}

// keyLabels returns the label of each proxy key, as the access log names it.
func keyLabels(keys []ProxyKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = keyLabel(k, i)
	}
	return out
}

// keyLabel names the i-th proxy key (0-based): its name, else key#N. The
// position, not anything derived from the key: a hash prefix of a weak key
// could be reversed by guessing.
func keyLabel(k ProxyKey, i int) string {
	if k.Name != "" {
		return k.Name
	}
	return "key#" + strconv.Itoa(i+1)
}

// nearest returns the candidate nearest to s by edit distance, if near enough.
func nearest(s string, candidates []string) string {
	best, bestDist := "", 1<<30
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	if bestDist <= 2 || bestDist <= len(s)/3 {
		return best
	}
	return ""
}

// limits parses the budget settings into c; it runs after the access
// settings, whose proxy keys the budgets belong to.
func (p *parser) limits(c *Config) {
	limits, problems := parseLimits(p.get("OXY_LIMITS"), c.AuthKeys)
	for _, problem := range problems {
		p.failSecret("OXY_LIMITS", problem)
	}
	c.Limits = limits
	if v := p.get("OXY_REDIS_URL"); v != "" {
		if err := CheckRedisURL(v); err != nil {
			p.failSecret("OXY_REDIS_URL", err.Error())
		} else {
			c.RedisURL = Secret(v)
		}
	}
	c.LimitsFailClosed = p.boolean("OXY_LIMITS_FAIL_CLOSED")
	if c.LimitsFailClosed && p.get("OXY_REDIS_URL") == "" {
		p.fail("OXY_LIMITS_FAIL_CLOSED", "true", "set without OXY_REDIS_URL; in-memory counters are never unreachable, want OXY_REDIS_URL too or false")
	}
}

// CheckRedisURL checks the form of OXY_REDIS_URL: redis:// or rediss://
// (TLS), a host, an optional port, password and database number. Its errors
// never contain the URL, which can hold a password. Query options are left
// to the Redis client to check.
func CheckRedisURL(v string) error {
	const want = "want redis://[[user]:password@]host[:port][/db] or rediss:// for TLS"
	scheme, _, ok := strings.Cut(v, "://")
	if !ok {
		return errors.New("missing scheme, " + want)
	}
	if s := strings.ToLower(scheme); s != "redis" && s != "rediss" {
		if len(s) > 10 || !validName(s) {
			return errors.New("unsupported scheme, " + want)
		}
		return fmt.Errorf("scheme %q not supported, %s", s, want)
	}
	// url.Parse's errors quote parts of the URL, which may be a password
	// misread as a port or a path: none of its text is shown.
	const escape = " (escape / ? # @ : in a password as %2F %3F %23 %40 %3A)"
	u, err := url.Parse(v)
	if err != nil {
		switch msg := unwrapURLError(err).Error(); {
		case strings.Contains(msg, "port"):
			return errors.New("the port is not a number 1-65535" + escape + ", " + want)
		case strings.Contains(msg, "userinfo"):
			return errors.New("the user or password part is malformed" + escape + ", " + want)
		default:
			return errors.New("not a URL" + escape + ", " + want)
		}
	}
	switch {
	case u.Hostname() == "":
		return errors.New("missing host, " + want)
	case u.Fragment != "":
		return errors.New("a #fragment is not supported" + escape + ", " + want)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return errors.New("the port is not a number 1-65535" + escape + ", " + want)
		}
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 || strings.Contains(db, "/") {
			return errors.New("the database after the host must be a number such as /0" + escape + ", " + want)
		}
	}
	return nil
}
