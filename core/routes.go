package core

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// preset is a vendor that OXY_ROUTES knows by name. Each base URL and
// credential is the one the vendor's own documentation gives (the README
// lists the pages); the URL is what its SDKs append /v1/... to.
type preset struct {
	name       string
	url        string
	credential Credential
}

var presets = []preset{
	// https://platform.openai.com/docs/api-reference/authentication
	{"openai", "https://api.openai.com", bearerCredential},
	// https://docs.anthropic.com/en/api/overview (x-api-key; the SDKs add anthropic-version)
	{"anthropic", "https://api.anthropic.com", Credential{Header: "X-Api-Key"}},
	// https://ai.google.dev/api (x-goog-api-key, or ?key= in the REST examples)
	{"gemini", "https://generativelanguage.googleapis.com", Credential{Header: "X-Goog-Api-Key"}},
	// https://docs.x.ai/api
	{"xai", "https://api.x.ai", bearerCredential},
	// https://api-docs.deepseek.com/
	{"deepseek", "https://api.deepseek.com", bearerCredential},
	// https://console.groq.com/docs/openai
	{"groq", "https://api.groq.com/openai", bearerCredential},
	// https://docs.mistral.ai/api/
	{"mistral", "https://api.mistral.ai", bearerCredential},
	// https://openrouter.ai/docs (the API example on each model page)
	{"openrouter", "https://openrouter.ai/api", bearerCredential},
}

func findPreset(name string) (preset, bool) {
	for _, p := range presets {
		if p.name == name {
			return p, true
		}
	}
	return preset{}, false
}

// routeKeyPrefix begins the setting that holds a route's real key:
// OXY_UPSTREAM_API_KEY_<NAME>.
const routeKeyPrefix = "OXY_UPSTREAM_API_KEY_"

// routeKeySetting returns the setting that holds route name's real key: the
// name upper-cased, with - as _.
func routeKeySetting(name string) string {
	return routeKeyPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// maxRouteNameLen bounds a route name; it is a log field and a metric label.
const maxRouteNameLen = 32

// checkRouteName validates a route name on its own: lower-case letters,
// digits and -, and not a name that would hide another path or setting.
func checkRouteName(name string) string {
	if name == "" || len(name) > maxRouteNameLen || name[0] == '-' || name[len(name)-1] == '-' {
		return fmt.Sprintf("the name must be 1-%d lower-case letters, digits and - (not first or last)", maxRouteNameLen)
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Sprintf("the name must be 1-%d lower-case letters, digits and - (not first or last)", maxRouteNameLen)
		}
	}
	switch {
	case name == DefaultRouteName:
		return "the name default is the route of OXY_TARGET, want another name"
	case name == "header":
		return "the name header would read its key from OXY_UPSTREAM_API_KEY_HEADER, which is another setting; want another name"
	case isVersionSegment(name):
		return "the name would hide OXY_TARGET's own API paths (/" + name + "/...), want a vendor name such as openai"
	}
	return ""
}

// isVersionSegment reports whether s looks like an API version path segment
// (v1, v1beta, v2alpha...), under which OpenAI-style APIs live.
func isVersionSegment(s string) bool {
	return len(s) >= 2 && s[0] == 'v' && s[1] >= '0' && s[1] <= '9'
}

// routes parses OXY_ROUTES and each route's OXY_UPSTREAM_API_KEY_<NAME> into
// c.Routes. It needs c.Target and c.HealthPath, to refuse names that would
// hide their paths.
func (p *parser) routes(c *Config) {
	const name = "OXY_ROUTES"
	seen := map[string]bool{}
	for _, entry := range p.list(name) {
		rname, rawURL, hasURL := strings.Cut(entry, "=")
		rname = strings.TrimSpace(rname)
		bad := func(problem string) {
			p.problems = append(p.problems, fmt.Sprintf("%s entry %q: %s", name, routeEntryShown(entry), problem))
		}
		if problem := checkRouteName(rname); problem != "" {
			bad(problem + ", want e.g. openai or my-gateway=https://host")
			continue
		}
		if problem := p.routeShadows(rname, c); problem != "" {
			bad(problem)
			continue
		}
		if seen[rname] {
			bad("route " + rname + " is listed twice, want each name once")
			continue
		}
		seen[rname] = true
		pr, isPreset := findPreset(rname)
		r := Route{Name: rname, KeySetting: routeKeySetting(rname)}
		switch {
		case hasURL:
			u, err := ParseTarget(strings.TrimSpace(rawURL))
			if err != nil {
				bad(err.Error())
				continue
			}
			r.Target, r.Credential = u, defaultCredential(u)
			if isPreset {
				r.Credential = pr.credential
			}
		case isPreset:
			r.Target, _ = ParseTarget(pr.url)
			r.Credential = pr.credential
		default:
			msg := "no preset named " + rname
			if best := closestOf(rname, presetNames(), 2); best != "" {
				msg += ", did you mean " + best + "?"
			} else {
				msg += " (presets: " + strings.Join(presetNames(), ", ") + ")"
			}
			bad(msg + " For any other upstream give its URL: " + rname + "=https://host")
			continue
		}
		r.Keys = p.realKeys(r.KeySetting)
		c.Routes = append(c.Routes, r)
	}
}

// routeEntryShown is an OXY_ROUTES entry as a message may print it: the URL
// goes through redactURL, so that a secret pasted into it is never echoed.
func routeEntryShown(entry string) string {
	if rname, rawURL, ok := strings.Cut(entry, "="); ok {
		return rname + "=" + redactURL(rawURL)
	}
	return entry
}

// routeShadows reports a route name that would take over paths that belong
// to the default target or to the proxy itself.
func (p *parser) routeShadows(name string, c *Config) string {
	if c.HealthPath != "" {
		first, _, _ := strings.Cut(strings.TrimPrefix(c.HealthPath, "/"), "/")
		if first == name {
			return "the route would hide the health route OXY_HEALTH_PATH=" + c.HealthPath + ", want another name"
		}
	}
	// Azure OpenAI's API lives under /openai/...: with an Azure OXY_TARGET,
	// a route named openai would take every request meant for it.
	if name == "openai" && c.Target != nil && defaultKeyHeader(c.Target) == "Api-Key" && c.Target.Path == "" {
		return "the route would hide the /openai/... API paths of OXY_TARGET (Azure OpenAI), " +
			"want another name, e.g. openai-direct=https://api.openai.com"
	}
	return ""
}

// defaultCredential is the credential of a route given by URL only:
// api-key for Azure OpenAI hosts, else Authorization: Bearer.
func defaultCredential(target *url.URL) Credential {
	if defaultKeyHeader(target) == "Api-Key" {
		return apiKeyCredential
	}
	return bearerCredential
}

func presetNames() []string {
	names := make([]string, len(presets))
	for i, p := range presets {
		names[i] = p.name
	}
	return names
}

// orphanRouteKeys reports OXY_UPSTREAM_API_KEY_<NAME> variables of environ
// that belong to no route, naming the nearest route but never the value. It
// returns the variables it judged, so the unknown-setting check skips them.
func (p *parser) orphanRouteKeys(environ []string, c *Config) map[string]bool {
	judged := map[string]bool{}
	own := map[string]bool{}
	var routeNames []string
	for _, r := range c.Routes {
		own[r.KeySetting] = true
		routeNames = append(routeNames, r.Name)
	}
	var orphans []string
	for _, kv := range environ {
		v, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(v, routeKeyPrefix) || v == "OXY_UPSTREAM_API_KEY_HEADER" {
			continue
		}
		judged[v] = true
		if !own[v] {
			orphans = append(orphans, v)
		}
	}
	sort.Strings(orphans)
	for _, v := range orphans {
		want := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(v, routeKeyPrefix), "_", "-"))
		msg := fmt.Sprintf("%s: set, but OXY_ROUTES has no route %s", v, want)
		if best := closestOf(want, routeNames, 2); best != "" {
			msg += fmt.Sprintf(", did you mean %s (route %s)?", routeKeySetting(best), best)
		} else {
			msg += "; add " + want + " to OXY_ROUTES or remove the variable"
		}
		p.problems = append(p.problems, msg)
	}
	return judged
}
