package core

import (
	"net/http"
	"strings"
)

// isEventStream reports whether a response is a server-sent event stream,
// whose header the record sends to the client as soon as it is written
// rather than with the first event.
//
// That is for memory, not for the client: net/http writes a response's
// header on its first flush, and that call chain is the deepest of the whole
// request. Made from inside the reverse proxy's copy loop (for the first
// event) it took the connection goroutine's stack past 8 KiB, so the runtime
// doubled it to 16 KiB, and a stream waiting for its next event still uses
// too much of it (about 4 KiB, half of it net/http's conn.serve and
// ReverseProxy.ServeHTTP frames) for the garbage collector to shrink it back.
// Sent from WriteHeader, some 0.5 KiB higher up the stack, it keeps every
// stream at 8 KiB: in make bench, RSS per open stream went from 64.5 to 57.2
// KiB at 1,000 streams (docs/BENCHMARKS.md). The reverse proxy flushes every
// event of such a stream at once anyway, so only the header leaves earlier,
// in a write of its own. Other bodies keep header and body in one write.
func isEventStream(h http.Header) bool {
	return strings.HasPrefix(h.Get("Content-Type"), "text/event-stream")
}
