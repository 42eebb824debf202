package awslambda

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// event is the part of a function URL event (payload format 2.0) that makes
// the HTTP request: the one mapping of both invoke modes.
// https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html#urls-payloads
type event struct {
	method   string
	domain   string
	rawPath  string
	rawQuery string
	headers  map[string]string
	cookies  []string
	body     string
	base64   bool
	sourceIP string
}

func urlEvent(ev *events.LambdaFunctionURLRequest) event {
	return event{
		method:   ev.RequestContext.HTTP.Method,
		domain:   ev.RequestContext.DomainName,
		rawPath:  cmp.Or(ev.RawPath, ev.RequestContext.HTTP.Path),
		rawQuery: ev.RawQueryString,
		headers:  ev.Headers,
		cookies:  ev.Cookies,
		body:     ev.Body,
		base64:   ev.IsBase64Encoded,
		sourceIP: ev.RequestContext.HTTP.SourceIP,
	}
}

// Reasons an event is refused. They never quote the URL: its query may carry
// a key.
var (
	errBodyNotBase64 = errors.New("body is not valid base64")
	errBadTarget     = errors.New("method or URL is not valid")
)

// newRequest builds the client's request from the event.
func (e event) newRequest() (*http.Request, error) {
	body := []byte(e.body)
	if e.base64 {
		var err error
		if body, err = base64.StdEncoding.DecodeString(e.body); err != nil {
			return nil, errBodyNotBase64
		}
	}
	url := "https://" + e.domain + e.rawPath
	if e.rawQuery != "" {
		url += "?" + e.rawQuery
	}
	r, err := http.NewRequest(e.method, url, bytes.NewReader(body))
	if err != nil {
		return nil, errBadTarget
	}
	e.apply(r)
	return r, nil
}

// apply makes r look as net/http's server would have parsed the client's
// request: one header value per name as the URL delivered it (repeated
// headers arrive joined by ","), the Host, the request URI as the client sent
// it and the client's address.
//
// Cookies arrive in cookies[] and, per the aws-lambda-go maintainers, may also
// arrive in the cookie header; they are joined into one Cookie header, once.
// core removes Cookie before the upstream anyway; wrappers still see it.
func (e event) apply(r *http.Request) {
	h := make(http.Header, len(e.headers)+1)
	for name, value := range e.headers {
		switch key := textproto.CanonicalMIMEHeaderKey(name); key {
		case "Host":
			r.Host = value
		case "Cookie":
			if len(e.cookies) == 0 {
				h[key] = append(h[key], value)
			}
		default:
			h[key] = append(h[key], value)
		}
	}
	if len(e.cookies) > 0 {
		h.Set("Cookie", strings.Join(e.cookies, "; "))
	}
	r.Header = h
	// core forwards the path exactly as in RequestURI (%2F and all).
	if strings.HasPrefix(e.rawPath, "/") {
		r.RequestURI = e.rawPath
		if e.rawQuery != "" {
			r.RequestURI += "?" + e.rawQuery
		}
	}
	// The event has no client port; net/http's RemoteAddr is host:port, and
	// core's X-Forwarded-For (OXY_FORWARD_CLIENT_IP) needs that form.
	if e.sourceIP != "" {
		r.RemoteAddr = net.JoinHostPort(e.sourceIP, "0")
	}
}

// isTrailer reports whether a response header name is about HTTP trailers:
// the Trailer announcement, or a trailer the reverse proxy adds to the header
// map after the body ("Trailer:Name"). A function URL reply has no trailers,
// so neither is passed on.
func isTrailer(name string) bool {
	return strings.EqualFold(name, "Trailer") || strings.HasPrefix(name, http.TrailerPrefix)
}

// Deadline margins. Lambda stops the function at the invocation's deadline,
// and the client then gets a bare 502 from the function URL. The proxy
// cancels the upstream request this long before it, which leaves time to
// answer an OpenAI-shaped 504 instead: writing a small JSON body and one POST
// to the Runtime API on the local network take milliseconds, but a 128 MB
// function gets a small share of a vCPU and may be paused by GC, so the margin
// is generous. For very short timeouts it is at most a tenth of the time left.
const (
	deadlineMargin         = 500 * time.Millisecond
	deadlineMarginFraction = 10
)

// withInvocationDeadline bounds ctx by the invocation's deadline less the
// margin. Without a deadline (never the case on Lambda) ctx is only made
// cancellable.
func withInvocationDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	margin := min(deadlineMargin, time.Until(deadline)/deadlineMarginFraction)
	return context.WithDeadline(ctx, deadline.Add(-max(margin, 0)))
}

// Errors the Lambda adapter itself answers, shaped like the OpenAI API's.
// The rest are core's (core.InvalidEvent, core.ErrUpstreamFailed,
// core.ErrInternal).
var (
	errResponseTooLarge = &core.APIError{Status: http.StatusBadGateway, Type: "proxy_error", Code: "response_too_large",
		Message: "the upstream response is larger than the 6 MB a BUFFERED Lambda function URL can return; " +
			"use a RESPONSE_STREAM function URL with OXY_LAMBDA_INVOKE_MODE=response_stream"}
	errDeadline = &core.APIError{Status: http.StatusGatewayTimeout, Type: "proxy_error", Code: "upstream_timeout",
		Message: "the upstream API did not finish before the Lambda function's timeout; raise the function's timeout (at most 900 s)"}
)

// failure picks the answer for a request whose handler panicked: the
// deadline, an aborted upstream body (http.ErrAbortHandler) or a bug.
func failure(ctx context.Context, p any) *core.APIError {
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return errDeadline
	case p == http.ErrAbortHandler:
		return core.ErrUpstreamFailed
	default:
		return core.ErrInternal
	}
}
