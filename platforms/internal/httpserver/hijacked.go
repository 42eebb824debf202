package httpserver

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// hijacked tracks the connections that handlers took over (WebSocket
// upgrades, which the reverse proxy copies until either side ends):
// http.Server.Shutdown neither waits for nor closes them, and
// http.Server.Close does not close them either, so past the grace period
// they are closed here, as Caddy tracks and closes hijacked connections.
type hijacked struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func newHijacked() *hijacked { return &hijacked{conns: map[*trackedConn]struct{}{}} }

// track returns w, able to report the connection if a handler hijacks it.
// Only upgrade requests are wrapped: the reverse proxy hijacks for nothing
// else, and the rest keep the server's own writer.
func (h *hijacked) track(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	if r.Header.Get("Upgrade") == "" {
		return w
	}
	return &trackingWriter{ResponseWriter: w, conns: h}
}

// closeAll closes every hijacked connection still open.
func (h *hijacked) closeAll() {
	h.mu.Lock()
	conns := h.conns
	h.conns = map[*trackedConn]struct{}{}
	h.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
}

// trackingWriter is the server's writer with a Hijack that records the
// connection; Unwrap lets http.ResponseController reach the server's writer.
type trackingWriter struct {
	http.ResponseWriter
	conns *hijacked
}

func (w *trackingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *trackingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return conn, brw, err
	}
	c := &trackedConn{Conn: conn, conns: w.conns}
	w.conns.mu.Lock()
	w.conns.conns[c] = struct{}{}
	w.conns.mu.Unlock()
	return c, brw, nil
}

// trackedConn is a hijacked connection that leaves the set when closed.
type trackedConn struct {
	net.Conn
	conns *hijacked
}

func (c *trackedConn) Close() error {
	c.conns.mu.Lock()
	delete(c.conns.conns, c)
	c.conns.mu.Unlock()
	return c.Conn.Close()
}
