package core

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
)

// StatusClientClosedRequest is logged when the client went away before the
// answer was complete (nginx's 499). It is never sent: nobody is listening.
const StatusClientClosedRequest = 499

// APIError is an error made by the proxy itself, shaped like the OpenAI API's
// errors so that SDKs parse and surface it: {"error":{"message","type","code"}}.
type APIError struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    string `json:"code"`
}

func (e *APIError) Error() string { return e.Message }

// WriteError writes e as an OpenAI-shaped JSON error response.
func WriteError(w http.ResponseWriter, e *APIError) {
	body := errorBody(e)
	setErrorHeaders(w.Header(), len(body))
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}

// errorBody is e's JSON body: {"error":{"message","type","code"}}.
func errorBody(e *APIError) []byte {
	body, _ := json.Marshal(struct {
		Error *APIError `json:"error"`
	}{e})
	return append(body, '\n')
}

// setErrorHeaders sets the headers of a proxy-made error with a body of n bytes.
func setErrorHeaders(h http.Header, n int) {
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(n))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

// ErrShutdown is the cause with which a server ends the contexts of the
// requests it cuts at the end of its shutdown grace period
// (context.WithCancelCause). Such a request is logged as the proxy's own
// abort ("cut":"shutdown"), never as 499, and one still waiting for the
// upstream gets a 503.
var ErrShutdown = errors.New("the proxy is shutting down and its grace period (OXY_SHUTDOWN_GRACE) is over")

// Error values for the failures the proxy itself answers. The platform
// adapters answer with the exported ones too, so that each failure has one
// code and one message in every build.
var (
	errUpstreamUnreachable = &APIError{Status: http.StatusBadGateway, Type: "proxy_error", Code: "upstream_unreachable",
		Message: "the proxy could not reach the upstream API"}
	errUpstreamTimeout = &APIError{Status: http.StatusGatewayTimeout, Type: "proxy_error", Code: "upstream_timeout",
		Message: "the upstream API did not answer in time"}
	errShuttingDown = &APIError{Status: http.StatusServiceUnavailable, Type: "proxy_error", Code: "proxy_shutting_down",
		Message: "the proxy is shutting down; retry the request"}

	// ErrUpstreamFailed answers a request whose upstream closed the
	// connection or sent an invalid response, before or during the body.
	ErrUpstreamFailed = &APIError{Status: http.StatusBadGateway, Type: "proxy_error", Code: "upstream_error",
		Message: "the upstream API closed the connection or sent an invalid response"}
	// ErrInternal answers a request during which the proxy itself failed (a
	// recovered panic).
	ErrInternal = &APIError{Status: http.StatusInternalServerError, Type: "proxy_error", Code: "internal_error",
		Message: "the proxy failed while handling the request"}
)

// InvalidEvent answers a serverless event from which no HTTP request can be
// built (a body that is not base64, a bad method or path, a payload that is
// not an HTTP event). reason must not quote the request: its URL or headers
// may carry a key.
func InvalidEvent(reason string) *APIError {
	return &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_event",
		Message: "the proxy could not read the request from the platform's event: " + reason}
}

// classify maps a round-trip error to the proxy's answer. clientGone reports
// that the client's own context ended, in which case nothing is sent and the
// request is logged as 499.
func classify(r *http.Request, err error) (e *APIError, clientGone bool) {
	if cause := context.Cause(r.Context()); cause != nil {
		switch {
		case errors.Is(cause, ErrShutdown):
			return errShuttingDown, false
		case errors.Is(cause, context.Canceled):
			return nil, true
		}
	}
	var ne net.Error
	switch {
	case isDialError(err): // a connect that timed out is still "unreachable"
		return errUpstreamUnreachable, false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return errUpstreamTimeout, false
	default:
		return ErrUpstreamFailed, false
	}
}

func isDialError(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	var de *net.DNSError
	return errors.As(err, &de)
}
