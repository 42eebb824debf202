package tencentscf

import (
	"log/slog"
	"net/http"
	"net/textproto"
	"sort"
	"strings"
)

// SCF refuses a response whose headers together exceed 4 KB. The gateway adds
// headers of its own, so the proxy keeps what it sends below headerBudget.
const headerBudget = 3 << 10

// droppedResponseHeaders are upstream response headers that a client of the
// proxy never needs. The vendor's CDN cookies (OpenAI sends two __cf_bm /
// _cfuvid cookies of ~250 bytes each) belong to the vendor's domain, not the
// proxy's; reporting (Report-To, NEL) and HSTS policies would be applied to
// the proxy's own origin. Dropping them keeps a typical OpenAI response well
// below the limit.
var droppedResponseHeaders = []string{
	"Set-Cookie", "Set-Cookie2", "Report-To", "Reporting-Endpoints", "Nel", "Strict-Transport-Security",
}

// keptResponseHeaders and keptResponsePrefixes are what clients and SDKs read:
// they survive even when the rest must go to fit the budget.
var (
	keptResponseHeaders = map[string]bool{
		"Content-Type": true, "Content-Length": true, "Content-Encoding": true, "Content-Range": true,
		"Transfer-Encoding": true, "Trailer": true, "Connection": true, "Upgrade": true,
		"Location": true, "Retry-After": true, "Retry-After-Ms": true, "Www-Authenticate": true,
		"X-Request-Id": true, "Request-Id": true, "Cache-Control": true,
		"Sec-Websocket-Accept": true, "Sec-Websocket-Protocol": true, "Sec-Websocket-Extensions": true,
	}
	keptResponsePrefixes = []string{"X-Ratelimit-", "Openai-", "Anthropic-"}
)

// headerTrimmer removes response headers so that the response fits SCF's limit.
type headerTrimmer struct {
	logger *slog.Logger
}

func newHeaderTrimmer(logger *slog.Logger) *headerTrimmer {
	return &headerTrimmer{logger: logger}
}

// trim removes the never-needed headers, then, while the rest is still over
// the budget, the largest headers that clients do not read. It logs the names
// (never the values) of what the budget forced out.
func (t *headerTrimmer) trim(r *http.Request, h http.Header) {
	for _, name := range droppedResponseHeaders {
		delete(h, name)
	}
	size := headerSize(h)
	if size <= headerBudget {
		return
	}
	var optional []string
	for name := range h {
		if !kept(name) {
			optional = append(optional, name)
		}
	}
	sort.Slice(optional, func(i, j int) bool {
		si, sj := fieldSize(optional[i], h[optional[i]]), fieldSize(optional[j], h[optional[j]])
		if si != sj {
			return si > sj
		}
		return optional[i] < optional[j]
	})
	var dropped []string
	for _, name := range optional {
		if size <= headerBudget {
			break
		}
		size -= fieldSize(name, h[name])
		delete(h, name)
		dropped = append(dropped, name)
	}
	level := slog.LevelInfo
	if size > headerBudget {
		level = slog.LevelWarn
	}
	t.logger.Log(r.Context(), level, "response headers trimmed to fit the SCF 4 KB limit",
		"path", r.URL.Path, "dropped", dropped, "size", size, "budget", headerBudget)
}

func kept(name string) bool {
	name = textproto.CanonicalMIMEHeaderKey(name)
	if keptResponseHeaders[name] {
		return true
	}
	for _, p := range keptResponsePrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// headerSize is the size of h on the wire as HTTP/1.1 header lines.
func headerSize(h http.Header) int {
	n := 0
	for name, values := range h {
		n += fieldSize(name, values)
	}
	return n
}

func fieldSize(name string, values []string) int {
	n := 0
	for _, v := range values {
		n += len(name) + len(": ") + len(v) + len("\r\n")
	}
	return n
}

// trimmingWriter trims the response headers just before they are sent, on
// every path that sends them: WriteHeader, the first Write, or a Flush.
// Unwrap lets http.ResponseController reach the server's writer for flushing
// (SSE), deadlines and WebSocket hijacking.
type trimmingWriter struct {
	http.ResponseWriter
	trim        *headerTrimmer
	req         *http.Request
	wroteHeader bool
}

func (w *trimmingWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.trim.trim(w.req, w.Header())
		// Informational (1xx) responses send headers too; the final one follows.
		w.wroteHeader = code >= 200 || code == http.StatusSwitchingProtocols
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *trimmingWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// FlushError flushes buffered data to the client, sending trimmed headers
// first if none were sent yet.
func (w *trimmingWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush implements http.Flusher for handlers that assert it directly.
func (w *trimmingWriter) Flush() { _ = w.FlushError() }

// Unwrap returns the server's writer, for http.ResponseController.
func (w *trimmingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
