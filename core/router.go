package core

import (
	"net/http"
	"net/http/httputil"
	"strings"
)

// Router picks the upstream of a request from its raw path: /NAME or
// /NAME/... goes to the route NAME with /NAME removed once, every other path
// to the default upstream unchanged. The table is built once at start-up;
// choosing costs one map lookup on a substring of the path.
//
// Names are matched against the bytes the client sent, case-sensitively
// (route names are lower-case), so /OpenAI/... and /%6Fpenai/... go to the
// default upstream: a route is reached by its one spelling only.
type Router struct {
	def   *Upstream
	named map[string]*Upstream
}

// NewRouter returns the router for routes, whose first entry is the default
// route (Config.AllRoutes); build makes each upstream's reverse proxy. Names
// are assumed valid and distinct, as FromEnv guarantees; of two routes with
// one name the first wins.
func NewRouter(routes []Route, build func(*Upstream) *httputil.ReverseProxy) *Router {
	rt := &Router{named: make(map[string]*Upstream, len(routes))}
	for i, r := range routes {
		u := &Upstream{Route: r}
		u.proxy = build(u)
		if i == 0 {
			rt.def = u
			continue
		}
		if _, dup := rt.named[r.Name]; !dup {
			rt.named[r.Name] = u
		}
	}
	return rt
}

// Route returns r's upstream and the path to forward to it, escaped as on
// the wire: the client's path without the route prefix. set reports that the
// path must replace the one the reverse proxy derives (always for a named
// route; for the default one, whenever the client's raw bytes are known).
func (rt *Router) Route(r *http.Request) (u *Upstream, path string, set bool) {
	p, raw := rawPath(r)
	if !raw {
		p = r.URL.EscapedPath()
	}
	if len(rt.named) > 0 && len(p) > 1 {
		name, rest := p[1:], ""
		if i := strings.IndexByte(name, '/'); i >= 0 {
			name, rest = name[:i], name[i:]
		}
		if u := rt.named[name]; u != nil {
			return u, rest, true
		}
	}
	return rt.def, p, raw
}
