package scfheaders

import (
	"net/netip"
	"strings"
)

// RemoteAddrHeader is the header in which SCF function URLs give the client's
// address, for web functions and, in the event's headers, event functions.
// https://cloud.tencent.com/document/product/583/96099 ("此字段为客户端的请求IP").
//
// It is trusted because SCF documents the X-Scf- headers as set by the
// platform and not customizable by callers
// (https://cloud.tencent.com/document/product/583/56124, and
// https://www.tencentcloud.com/zh/document/product/583/40678: fields starting
// with X-SCF- are filled in by the platform). That is the vendor's word, not
// verified on the cloud here; the parsing below fails closed on anything but
// one address.
const RemoteAddrHeader = "X-Scf-Remote-Addr"

// RemoteAddr parses the values of RemoteAddrHeader. It reports false unless
// there is exactly one value holding one IP address (optionally with a port),
// so a repeated or comma-joined header, which could mix a client's value with
// the platform's, never yields an address.
func RemoteAddr(values []string) (netip.Addr, bool) {
	if len(values) != 1 {
		return netip.Addr{}, false
	}
	v := strings.TrimSpace(values[0])
	a, err := netip.ParseAddr(v)
	if err != nil {
		ap, perr := netip.ParseAddrPort(v)
		if perr != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	if a.Zone() != "" || a.IsUnspecified() {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
