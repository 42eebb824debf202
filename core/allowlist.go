package core

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// The IP allow-list (OXY_ALLOW_CIDRS) judges the client by its address as the
// platform knows it, never by a header a client can forge (X-Forwarded-For,
// X-Real-Ip, Forwarded...). There is one way to hand core that address:
// r.RemoteAddr. On a server net/http sets it to the socket peer; a platform
// that builds the request from an event sets it to the address in the event;
// a platform adapter whose socket peer is the platform's own proxy replaces
// it with the address the platform vouches for, or with "" when the platform
// vouches for none, so that the list fails closed and OXY_FORWARD_CLIENT_IP
// names nobody:
//
//	r2 := *r
//	r2.RemoteAddr = netip.AddrPortFrom(addr, 0).String()
//	next.ServeHTTP(w, &r2)

// ClientAddr returns the client's address, from r.RemoteAddr ("host:port"
// or a bare address). IPv4-mapped IPv6 addresses are returned as IPv4 and
// zones are dropped. ok is false when no valid address is known.
func ClientAddr(r *http.Request) (addr netip.Addr, ok bool) {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		addr = ap.Addr()
	} else if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		addr = a
	}
	if !addr.IsValid() {
		return netip.Addr{}, false
	}
	return addr.Unmap().WithZone(""), true
}

// allowList is the parsed OXY_ALLOW_CIDRS.
type allowList struct {
	prefixes []netip.Prefix
}

func newAllowList(prefixes []netip.Prefix) *allowList {
	if len(prefixes) == 0 {
		return nil
	}
	return &allowList{prefixes: prefixes}
}

// allows reports whether the request's client address is in the list. A
// request whose address is unknown is refused: the list fails closed.
func (l *allowList) allows(r *http.Request) (netip.Addr, bool) {
	addr, ok := ClientAddr(r)
	if !ok {
		return addr, false
	}
	for _, p := range l.prefixes {
		if p.Contains(addr) {
			return addr, true
		}
	}
	return addr, false
}

// parseAllowItem parses one OXY_ALLOW_CIDRS entry: a CIDR (10.0.0.0/8,
// 2001:db8::/32) or a bare IP address, which stands for itself alone.
func parseAllowItem(item string) (netip.Prefix, error) {
	if strings.Contains(item, "/") {
		p, err := netip.ParsePrefix(item)
		if err != nil || p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("not a CIDR, want e.g. 10.0.0.0/8 or 2001:db8::/32")
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("IPv4-mapped IPv6 prefix, write it as an IPv4 CIDR such as 10.0.0.0/8")
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(item)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("not an IP address or CIDR, want e.g. 203.0.113.7 or 10.0.0.0/8")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
