package core

import (
	"net/http"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core/usage"
)

// Metering: the proxy reads the token usage of each answer as it passes
// (core/usage) and puts it on the request's Exchange, with the model, for
// the access log, the metrics and the budgets. Nothing is held back and no
// request is changed for it (OXY_STREAM_USAGE aside).

// meterResponse wraps a successful answer's body with the meter. It runs as
// ReverseProxy.ModifyResponse, after the upstream's headers arrived and
// before any byte goes to the client.
func (h *Handler) meterResponse(res *http.Response) {
	if h.meter == nil { // only in benchmarks, for the baseline
		return
	}
	if res.StatusCode < 200 || res.StatusCode >= 300 || res.Request == nil || res.Request.Method == http.MethodHead {
		return
	}
	rec := recordFrom(res.Request)
	if rec == nil {
		return
	}
	if b, ok := h.meter.Body(res.Body, res.Header.Get("Content-Type"), res.Header.Get("Content-Encoding")); ok {
		res.Body = b
		rec.meter = b
	}
}

// sniffModel reads the model a JSON request body names as the upstream reads
// it, for answers that do not name it (errors, cut streams).
func (h *Handler) sniffModel(rec *record, r *http.Request) {
	if h.meter == nil || r.Body == nil || r.Body == http.NoBody || usage.KindOf(r.Header.Get("Content-Type")) != usage.JSON {
		return
	}
	rec.reqModel = usage.NewRequestModel(r.Body)
	r.Body = rec.reqModel
}

// settleUsage puts the metered usage and the model on the Exchange: the
// response's model, else the request body's, else the one its path names
// (Gemini, Azure deployments). It runs once the response is done with, when
// the record finishes, before the observers (the budget's charge among them)
// read the Exchange.
func (rec *record) settleUsage() {
	if rec.settled {
		return
	}
	rec.settled = true
	x := &rec.x
	if rec.meter != nil {
		x.Usage = rec.meter.Usage()
		if x.Usage.StreamError && x.UpstreamError == "" {
			x.UpstreamError = UpstreamStreamError
		}
	}
	x.Model = x.Usage.Model
	if x.Model == "" && rec.reqModel != nil {
		x.Model = rec.reqModel.Model()
	}
	if x.Model == "" && rec.req != nil {
		x.Model = usage.ModelFromPath(rec.req.URL.Path)
	}
}

// The kinds of upstream failure in Exchange.UpstreamError.
const (
	UpstreamUnreachable = "unreachable"  // no connection could be made
	UpstreamTimeout     = "timeout"      // OXY_REQUEST_TIMEOUT passed
	UpstreamFailed      = "failed"       // the connection closed or the answer was invalid, before the body
	UpstreamAborted     = "aborted"      // the upstream failed mid-body: the client's answer was cut
	UpstreamStreamError = "stream_error" // a 200 stream carried an error event (Anthropic's overloaded_error...)
)

// upstreamErrorKind names the failure a proxy-made error answers.
func upstreamErrorKind(e *APIError) string {
	switch e {
	case errUpstreamUnreachable:
		return UpstreamUnreachable
	case errUpstreamTimeout:
		return UpstreamTimeout
	}
	return UpstreamFailed
}
