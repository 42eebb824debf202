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

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// MaxBufferedResponse is the largest JSON reply a BUFFERED function URL
// accepts (6 MB, the synchronous invocation payload limit), body included
// after base64 and JSON escaping.
// https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
const MaxBufferedResponse = 6 << 20

// Buffered serves a BUFFERED function URL: each invocation runs the proxy to
// the end and returns the whole response.
//
// The request is built from the event once, by the same mapping as the
// streaming mode (event.newRequest); aws-lambda-go-api-proxy's response
// writer turns the response into the reply (base64 for binary bodies,
// cookies[]). Its httpadapter is not used: it would build a second request
// with headers split on "," and cookies[] added again, and its Proxy (unlike
// ProxyWithContext) adds an X-GoLambdaProxy-ApiGw-Context header of account
// and IAM data.
type Buffered struct {
	next   http.Handler
	logger *slog.Logger
	// server marks request contexts as served by a server (see serveAborting).
	server *http.Server
}

// NewBuffered returns the BUFFERED handler around next, the proxy.
func NewBuffered(next http.Handler, logger *slog.Logger) *Buffered {
	return &Buffered{next: next, logger: logger, server: &http.Server{}}
}

// Invoke answers one function URL event. Failures the function URL would
// turn into a bare 502 (a body over 6 MB, an upstream cut off mid-body, the
// invocation's deadline) become OpenAI-shaped JSON errors instead.
func (b *Buffered) Invoke(ctx context.Context, ev *events.LambdaFunctionURLRequest) (events.APIGatewayV2HTTPResponse, error) {
	r, err := urlEvent(ev).newRequest()
	if err != nil {
		b.logger.Warn("invalid function URL event", "error", err)
		return errorResponse(core.InvalidEvent(err.Error())), nil
	}
	ctx, cancel := withInvocationDeadline(ctx)
	defer cancel()
	r = r.WithContext(serveAborting(ctx, b.server))
	w := proxycore.NewProxyResponseWriterV2()
	lw := &limitedWriter{ResponseWriter: w, limit: MaxBufferedResponse}
	panicked := b.serve(lw, r)
	switch {
	case lw.tooLarge:
		b.logger.Warn("response too large for a buffered function URL", "limit_bytes", MaxBufferedResponse)
		return errorResponse(errResponseTooLarge), nil
	case panicked != nil:
		e := failure(ctx, panicked)
		b.logger.Warn("partial response replaced by an error", "status", e.Status, "code", e.Code)
		return errorResponse(e), nil
	}
	res, err := w.GetProxyResponse()
	if err != nil { // the proxy wrote nothing
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

// serve runs the proxy and returns what it panicked with, if anything, so
// that the runtime never sees a panic (one makes aws-lambda-go end the
// process).
func (b *Buffered) serve(w http.ResponseWriter, r *http.Request) (panicked any) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				logPanic(b.logger, p, debug.Stack())
			}
			panicked = p
		}
	}()
	b.next.ServeHTTP(w, r)
	return nil
}

var errTooLarge = errors.New("response body over the buffered function URL limit")

// limitedWriter fails writes past limit, which makes the reverse proxy stop
// reading the upstream instead of buffering a body the platform would reject.
type limitedWriter struct {
	http.ResponseWriter
	limit    int
	n        int
	tooLarge bool
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.limit {
		w.tooLarge = true
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
