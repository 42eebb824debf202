package core

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// TestAllowList_forgedHeadersIgnored sends, from 127.0.0.1, every header a
// client could use to claim an allowed address: the proxy still judges the
// socket peer and refuses, before the upstream.
func TestAllowList_forgedHeadersIgnored(t *testing.T) {
	up := newAccessUpstream(t, nil)
	p := startAccessProxy(t, up, map[string]string{"OXY_ALLOW_CIDRS": "10.0.0.0/8, 203.0.113.7"}, nil, nil)
	forged := acHeader("X-Forwarded-For", "10.1.2.3", "X-Forwarded-For", "203.0.113.7", "X-Real-Ip", "10.1.2.3",
		"Forwarded", "for=10.1.2.3", "True-Client-Ip", "203.0.113.7", "Cf-Connecting-Ip", "10.1.2.3", "X-Client-Ip", "10.1.2.3")
	res, body := p.do(t, "GET", "/v1/models", forged)
	if res.StatusCode != http.StatusForbidden || acErrorCode(t, body) != "address_not_allowed" {
		t.Fatalf("forged address headers: %d %s; want 403 address_not_allowed", res.StatusCode, body)
	}
	if n := up.hits.Load(); n != 0 {
		t.Fatalf("upstream hit %d times; want 0", n)
	}
	if logs := p.logs(); !strings.Contains(logs, "rejected=address_not_allowed client_addr=127.0.0.1") {
		t.Errorf("log lacks the refusal and the real address:\n%s", logs)
	}

	p = startAccessProxy(t, up, map[string]string{"OXY_ALLOW_CIDRS": "10.0.0.0/8, 127.0.0.0/30"}, nil, nil)
	if res, _ := p.do(t, "GET", "/v1/models", nil); res.StatusCode != http.StatusOK || up.hits.Load() != 1 {
		t.Errorf("allowed address: status %d, upstream hits %d; want 200 through", res.StatusCode, up.hits.Load())
	}
}

// TestAllowList_platformAddress stands in for a serverless adapter that hands
// core the client address its platform vouches for, in r.RemoteAddr.
func TestAllowList_platformAddress(t *testing.T) {
	up := newAccessUpstream(t, nil)
	wrapWith := func(addr string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r2 := *r
				r2.RemoteAddr = netip.AddrPortFrom(netip.MustParseAddr(addr), 0).String()
				next.ServeHTTP(w, &r2)
			})
		}
	}
	env := map[string]string{"OXY_ALLOW_CIDRS": "10.0.0.0/8"}
	p := startAccessProxy(t, up, env, nil, wrapWith("10.9.8.7"))
	if res, _ := p.do(t, "GET", "/v1/models", nil); res.StatusCode != http.StatusOK {
		t.Errorf("platform address inside the list: status %d; want 200", res.StatusCode)
	}
	p = startAccessProxy(t, up, map[string]string{"OXY_ALLOW_CIDRS": "127.0.0.1"}, nil, wrapWith("192.0.2.1"))
	if res, _ := p.do(t, "GET", "/v1/models", nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("platform address outside the list, socket peer inside: status %d; want 403 (the platform's address wins)", res.StatusCode)
	}
}

func TestClientAddr(t *testing.T) {
	for _, tc := range []struct {
		remote, want string
	}{
		{remote: "127.0.0.1:5000", want: "127.0.0.1"},
		{remote: "[::1]:5000", want: "::1"},
		{remote: "[::ffff:10.1.2.3]:5000", want: "10.1.2.3"},
		{remote: "[fe80::1%eth0]:5000", want: "fe80::1"},
		{remote: "10.1.2.3", want: "10.1.2.3"},
		{remote: "203.0.113.9:0", want: "203.0.113.9"}, // as the serverless platforms set it
		{remote: "[::ffff:203.0.113.9]:0", want: "203.0.113.9"},
		{remote: "", want: ""},
		{remote: "@", want: ""},
		{remote: "example.com:80", want: ""},
	} {
		r, err := http.NewRequest("GET", "http://proxy/", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.RemoteAddr = tc.remote
		r.Header.Set("X-Forwarded-For", "10.0.0.1")
		got, ok := ClientAddr(r)
		if (tc.want == "") == ok || (ok && got.String() != tc.want) {
			t.Errorf("ClientAddr(RemoteAddr %q) = %v, %v; want %q", tc.remote, got, ok, tc.want)
		}
	}
}

// TestAllowList_unknownAddressRefused: the list fails closed.
func TestAllowList_unknownAddressRefused(t *testing.T) {
	l := newAllowList([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")})
	r, err := http.NewRequest("GET", "http://proxy/", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.RemoteAddr = ""
	if _, ok := l.allows(r); ok {
		t.Error("request with no known address allowed; want refused")
	}
}

func TestParseAllowItem(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "10.1.2.3/8", want: "10.0.0.0/8"},
		{in: "203.0.113.7", want: "203.0.113.7/32"},
		{in: "::ffff:203.0.113.7", want: "203.0.113.7/32"},
		{in: "2001:db8::/32", want: "2001:db8::/32"},
		{in: "::1", want: "::1/128"},
		{in: "::ffff:10.0.0.0/104", err: "IPv4-mapped"},
		{in: "10.0.0.0/33", err: "not a CIDR"},
		{in: "fe80::1%eth0", err: "not an IP address"},
		{in: "localhost", err: "not an IP address"},
	} {
		got, err := parseAllowItem(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseAllowItem(%q) err = %v; want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got.String() != tc.want):
			t.Errorf("parseAllowItem(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}
