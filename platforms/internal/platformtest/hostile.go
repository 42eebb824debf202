package platformtest

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CheckHostileProbes sends a few of issue 17's hostile requests, as raw
// bytes, to the HTTP build at base (http://127.0.0.1:port), each after
// prefix (a path prefix the platform strips, or ""), and checks the core's
// answers hold in that build: dot segments escaping the base path and
// foreign upgrades refused, TRACE refused, a request smuggled behind a
// chunked body (of an API request, or of "OPTIONS *") never read. None may reach u.
func CheckHostileProbes(t *testing.T, u *Upstream, base, prefix string) {
	t.Helper()
	addr := strings.TrimPrefix(base, "http://")
	before := len(u.Seen())
	hidden := "GET " + prefix + "/hidden HTTP/1.1\r\nHost: p\r\n\r\n"
	smuggled := "0\r\n\r\n" + hidden
	for _, tc := range []struct {
		raw  string
		want int
	}{
		{"GET " + prefix + "/../admin HTTP/1.1\r\nHost: p\r\n\r\n", 400},
		{"GET " + prefix + "/%2e%2e/admin HTTP/1.1\r\nHost: p\r\n\r\n", 400},
		{"GET " + prefix + "/v1/models HTTP/1.1\r\nHost: p\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", 400},
		{"TRACE " + prefix + "/v1/models HTTP/1.1\r\nHost: p\r\n\r\n", 405},
		{"POST " + prefix + "/v1/chat/completions HTTP/1.1\r\nHost: p\r\nContent-Length: " + strconv.Itoa(len(smuggled)) +
			"\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled, 200},
		{"OPTIONS * HTTP/1.1\r\nHost: p\r\nContent-Length: " + strconv.Itoa(len(smuggled)) +
			"\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled, 400},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(conn, tc.raw)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(conn)
		conn.Close()
		out := string(b)
		if !strings.HasPrefix(out, "HTTP/1.1 "+strconv.Itoa(tc.want)) || strings.Count(out, "HTTP/1.1 ") != 1 {
			first, _, _ := strings.Cut(out, "\r\n")
			t.Errorf("%q: got %q (%d responses); want one %d, then the connection closed",
				tc.raw, first, strings.Count(out, "HTTP/1.1 "), tc.want)
		}
	}
	for _, s := range u.Seen()[before:] {
		if s.Method != "POST" || !strings.HasSuffix(s.URI, "/v1/chat/completions") {
			t.Errorf("the upstream was sent %s %s", s.Method, s.URI)
		}
	}
}
