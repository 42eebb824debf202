package tencentscfevent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/tencentyun/scf-go-lib/cloudfunction"
	"github.com/tencentyun/scf-go-lib/functioncontext"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// Handler turns each SCF event into an HTTP request for the proxy and the
// proxy's whole response into one integrated-response reply. It implements
// scf-go-lib's cloudfunction.Handler. Every event gets a reply, an
// OpenAI-shaped error for events it cannot serve, never a Go error: a Go
// error would reach the client as the platform's own, unparsable, failure.
type Handler struct {
	next   http.Handler
	logger *slog.Logger
	limit  int
	// server marks requests as served by an HTTP server; see Invoke.
	server *http.Server
}

var _ cloudfunction.Handler = (*Handler)(nil)

// NewHandler returns a Handler serving next (normally core.New's proxy).
func NewHandler(next http.Handler, logger *slog.Logger) *Handler {
	return &Handler{
		next:   next,
		logger: logger,
		limit:  MaxReply,
		server: &http.Server{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)},
	}
}

// Errors the handler answers itself. The rest are core's
// (core.InvalidEvent, core.ErrUpstreamFailed, core.ErrInternal).
var (
	errTooLarge = &core.APIError{Status: http.StatusBadGateway, Type: "proxy_error", Code: "response_too_large",
		Message: "the upstream response exceeds the 6 MB limit of an SCF event function reply; deploy the SCF web function for large or streamed answers"}
	errAbortedTimeout = &core.APIError{Status: http.StatusGatewayTimeout, Type: "proxy_error", Code: "upstream_timeout",
		Message: "the function's time limit ran out while the upstream API was still answering; the incomplete response was discarded"}
)

// errPanic reports a panic other than http.ErrAbortHandler in the proxy.
var errPanic = errors.New("handler panicked")

// Invoke handles one event payload and returns the reply JSON.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	// Outside a net/http server, httputil.ReverseProxy ends a response whose
	// upstream fails mid-body as if it were complete (it only panics with
	// http.ErrAbortHandler when it sees http.ServerContextKey). A buffered
	// reply must not turn a cut-off answer into a clean 200, so requests are
	// marked as served by a server; serve recovers the abort.
	ctx = context.WithValue(ctx, http.ServerContextKey, h.server)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	ev, err := ParseEvent(payload)
	var r *http.Request
	if err == nil {
		r, err = ev.Request(ctx)
	}
	if err != nil {
		h.logger.Warn("invalid event", "error", err.Error(), "scf_request_id", requestID(ctx))
		return h.errorReply(core.InvalidEvent(err.Error()))
	}
	w := newBufferedWriter(h.limit)
	err = h.serve(w, r)
	switch {
	case w.overflow:
		return h.errorReply(errTooLarge)
	case errors.Is(err, http.ErrAbortHandler) && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return h.errorReply(errAbortedTimeout)
	case errors.Is(err, http.ErrAbortHandler):
		return h.errorReply(core.ErrUpstreamFailed)
	case err != nil, w.status == 0:
		return h.errorReply(core.ErrInternal)
	}
	reply, err := w.encode()
	if err != nil {
		h.logger.Error("encoding the reply", "error", err.Error(), "scf_request_id", requestID(ctx))
		return h.errorReply(core.ErrInternal)
	}
	if len(reply) > h.limit {
		return h.errorReply(errTooLarge)
	}
	return reply, nil
}

// serve runs the proxy, turning its panics into errors: http.ErrAbortHandler
// for an aborted response (already logged by the proxy's access log), errPanic
// for anything else.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request) (err error) {
	defer func() {
		p := recover()
		switch {
		case p == nil:
		case p == http.ErrAbortHandler:
			err = http.ErrAbortHandler
		default:
			h.logger.Error("panic while proxying", "panic", fmt.Sprint(p), "stack", string(debug.Stack()),
				"scf_request_id", requestID(r.Context()))
			err = errPanic
		}
	}()
	h.next.ServeHTTP(w, r)
	return nil
}

// errorReply returns the reply carrying e as an OpenAI-shaped JSON error.
func (h *Handler) errorReply(e *core.APIError) ([]byte, error) {
	w := newBufferedWriter(h.limit)
	core.WriteError(w, e)
	return w.encode()
}

func requestID(ctx context.Context) string {
	if fc, ok := functioncontext.FromContext(ctx); ok {
		return fc.RequestID
	}
	return ""
}
