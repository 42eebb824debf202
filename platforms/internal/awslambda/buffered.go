package awslambda

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/aws/aws-lambda-go/events"
	proxycore "github.com/awslabs/aws-lambda-go-api-proxy/core"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// MaxBufferedResponse is the largest JSON reply a BUFFERED function URL
// accepts (6 MB, the synchronous invocation payload limit), body included
// after base64 and JSON escaping.
// https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
const MaxBufferedResponse = 6 << 20

// Buffered serves a BUFFERED function URL: each invocation runs the proxy to
// the end and returns the whole response.
type Buffered struct {
	logger  *slog.Logger
	adapter *httpadapter.HandlerAdapterV2
	// server marks request contexts as served by a server (see serveAborting).
	server *http.Server
}

// NewBuffered returns the BUFFERED handler around next, the proxy.
func NewBuffered(next http.Handler, logger *slog.Logger) *Buffered {
	b := &Buffered{logger: logger, server: &http.Server{}}
	b.adapter = httpadapter.NewV2(&bufferedHandler{next: next, logger: logger})
	return b
}

// invocation carries one invocation's request data into the adapter's
// handler, and what went wrong back out.
type invocation struct {
	event    event
	served   bool
	tooLarge bool
	panicked any
}

type invocationKey struct{}

// Invoke answers one function URL event. Failures the function URL would
// turn into a bare 502 (a body over 6 MB, an upstream cut off mid-body, the
// invocation's deadline) become OpenAI-shaped JSON errors instead.
//
// It uses the adapter's ProxyWithContext, never Proxy: Proxy adds an
// X-GoLambdaProxy-ApiGw-Context header (account and IAM data) to the request.
func (b *Buffered) Invoke(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	ctx, cancel := withInvocationDeadline(ctx)
	defer cancel()
	inv := &invocation{event: apiGatewayEvent(ev)}
	// Refuse what the adapter would refuse, before it logs the URL.
	if _, err := inv.event.newRequest(); err != nil {
		b.logger.Warn("invalid function URL event", "error", err)
		return errorResponse(core.InvalidEvent(err.Error())), nil
	}
	ctx = context.WithValue(ctx, invocationKey{}, inv)
	ctx = serveAborting(ctx, b.server)
	res, err := b.adapter.ProxyWithContext(ctx, ev)
	switch {
	case err != nil && !inv.served:
		b.logger.Warn("invalid function URL event", "error", err)
		return errorResponse(core.InvalidEvent("the function URL event is not an HTTP request")), nil
	case inv.tooLarge:
		b.logger.Warn("response too large for a buffered function URL", "limit_bytes", MaxBufferedResponse)
		return errorResponse(errResponseTooLarge), nil
	case inv.panicked != nil:
		e := failure(ctx, inv.panicked)
		b.logger.Warn("partial response replaced by an error", "status", e.Status, "code", e.Code)
		return errorResponse(e), nil
	case err != nil: // the proxy wrote nothing
		b.logger.Warn("no response", "error", err)
		return errorResponse(failure(ctx, http.ErrAbortHandler)), nil
	}
	for k := range res.Headers {
		if isTrailer(k) {
			delete(res.Headers, k)
		}
	}
	if n := encodedSize(res); n > MaxBufferedResponse {
		b.logger.Warn("response too large for a buffered function URL", "bytes", n, "limit_bytes", MaxBufferedResponse)
		return errorResponse(errResponseTooLarge), nil
	}
	return res, nil
}

// serveAborting marks ctx as served by an HTTP server. httputil.ReverseProxy
// then reports an upstream body that fails midway by panicking with
// http.ErrAbortHandler, as it does under net/http, instead of silently ending
// the body as if it were complete; the Lambda adapters recover that panic.
func serveAborting(ctx context.Context, srv *http.Server) context.Context {
	return context.WithValue(ctx, http.ServerContextKey, srv)
}

// bufferedHandler is what the adapter calls: it restores the request as the
// client sent it, caps the body and recovers panics, so the runtime never
// sees one (a panic makes aws-lambda-go end the process).
type bufferedHandler struct {
	next   http.Handler
	logger *slog.Logger
}

func (h *bufferedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	inv := r.Context().Value(invocationKey{}).(*invocation)
	inv.served = true
	// The adapter splits header values on "," and adds each cookie as its own
	// Cookie header on top of the cookie header; take them from the event.
	inv.event.apply(r)
	lw := &limitedWriter{ResponseWriter: w, limit: MaxBufferedResponse, inv: inv}
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				logPanic(h.logger, p, debug.Stack())
			}
			inv.panicked = p
		}
	}()
	h.next.ServeHTTP(lw, r)
}

var errTooLarge = errors.New("response body over the buffered function URL limit")

// limitedWriter fails writes past limit, which makes the reverse proxy stop
// reading the upstream instead of buffering a body the platform would reject.
type limitedWriter struct {
	http.ResponseWriter
	limit int
	n     int
	inv   *invocation
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.limit {
		w.inv.tooLarge = true
		return 0, errTooLarge
	}
	w.n += len(p)
	return w.ResponseWriter.Write(p)
}

// Flush does nothing: the adapter sends the response when the handler ends.
func (w *limitedWriter) Flush() {}

// errorResponse renders e as the function URL reply.
func errorResponse(e *core.APIError) events.APIGatewayV2HTTPResponse {
	w := proxycore.NewProxyResponseWriterV2()
	core.WriteError(w, e)
	res, _ := w.GetProxyResponse()
	return res
}

// encodedSize is the size of res as the runtime sends it: aws-lambda-go
// encodes replies with HTML escaping off.
func encodedSize(res events.APIGatewayV2HTTPResponse) int {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		return 0
	}
	return buf.Len()
}
