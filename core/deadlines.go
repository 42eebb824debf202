package core

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// Idle limits on the client, like nginx's client_body_timeout and
// send_timeout: each wait for more of the request body, and each write the
// client does not take, may last OXY_CLIENT_BODY_TIMEOUT and OXY_SEND_TIMEOUT.
// They are deadlines set on the connection through http.ResponseController
// just before each read and each write, so time spent waiting on the upstream
// (a reasoning model thinking for minutes before its next event) never counts,
// and there is no limit on a whole request. Writers that are not net/http's
// (the serverless adapters) have no deadlines; the limits are then off.

// idleLimits arms the deadlines of one request's connection.
type idleLimits struct {
	rc   *http.ResponseController
	body time.Duration // 0: off
	send time.Duration // 0: off
}

// newIdleLimits returns the limits for w's connection. It clears a write
// deadline left by the previous request on a kept-alive connection, which
// also tells whether w supports deadlines at all.
func newIdleLimits(rc *http.ResponseController, c Config) idleLimits {
	l := idleLimits{rc: rc, body: c.ClientBodyTimeout, send: c.SendTimeout}
	if l.body == 0 && l.send == 0 {
		return l
	}
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		l.body, l.send = 0, 0
	}
	return l
}

// armRead sets the deadline for the next read of the request body, and
// reports whether it did.
func (l idleLimits) armRead() bool {
	if l.body == 0 {
		return false
	}
	return l.rc.SetReadDeadline(time.Now().Add(l.body)) == nil
}

// disarmRead clears the read deadline once the body has ended: net/http
// then reads the connection in the background to notice a client that goes
// away, and a deadline left behind would cut a long answer.
func (l idleLimits) disarmRead() { _ = l.rc.SetReadDeadline(time.Time{}) }

// armWrite sets the deadline for the next write to the client. The deadline
// stays set after the write; every later write sets its own, and the end of
// the request sets one for the server's final bytes (see Handler.ServeHTTP).
func (l idleLimits) armWrite() {
	if l.send > 0 {
		_ = l.rc.SetWriteDeadline(time.Now().Add(l.send))
	}
}

// armSend sets the send deadline before a write to the client, like
// idleLimits.armWrite, but keeps a deadline that is still at least
// OXY_SEND_TIMEOUT away. A stream writes and flushes every event, and setting
// the connection's deadline twice per event (a runtime timer update each
// time) was about a tenth of the proxy's CPU per streamed event
// (docs/BENCHMARKS.md). A deadline it sets lies an eighth of the limit past
// it, so it is set at most once per eighth of the limit, and every write
// still gets at least OXY_SEND_TIMEOUT and at most an eighth more.
func (rec *record) armSend() {
	l := rec.limits
	if l.send <= 0 {
		return
	}
	now := time.Now()
	if !rec.sendDeadline.Before(now.Add(l.send)) {
		return
	}
	rec.sendDeadline = now.Add(l.send + l.send/8)
	if l.rc.SetWriteDeadline(rec.sendDeadline) != nil {
		rec.sendDeadline = time.Time{}
	}
}

// noteWriteError remembers that a write to the client timed out, so that the
// request is logged as cut by the send limit, not by the client.
func (rec *record) noteWriteError(err error) {
	if err != nil && rec.limits.send > 0 && isTimeout(err) {
		rec.sendTimedOut.Store(true)
	}
}

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// bodyReadError is an error reading the client's request body.
type bodyReadError struct{ err error }

// Errors for a request body the client failed to deliver: its fault, so a
// 4xx and an info line, never the upstream's 502 and a warning.
var (
	errClientBody = &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_request_body",
		Message: "the request body could not be read: its framing is invalid (malformed chunked encoding)"}
	errClientBodyTimeout = &APIError{Status: http.StatusRequestTimeout, Type: "invalid_request_error", Code: "request_body_timeout",
		Message: "the client sent nothing more of the request body in time (OXY_CLIENT_BODY_TIMEOUT)"}
)

// classifyBodyError maps an error reading the client's body to the answer:
// 408 when the client stalled, nothing (logged as 499) when it went away
// mid-body, else 400.
func classifyBodyError(err error) (e *APIError, clientGone bool) {
	switch {
	case isTimeout(err):
		return errClientBodyTimeout, false
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET):
		return nil, true
	default:
		return errClientBody, false
	}
}

// withoutAddresses drops the socket addresses from a network error
// ("read tcp 127.0.0.1:9000->203.0.113.7:51234: i/o timeout" becomes
// "read: i/o timeout"): the access log does not record clients' addresses.
func withoutAddresses(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return fmt.Errorf("%s: %w", oe.Op, oe.Err)
	}
	return err
}

// bodyError returns the first error reading the client's body, if any.
func (rec *record) bodyError() error {
	if rec == nil {
		return nil
	}
	if be := rec.bodyErr.Load(); be != nil {
		return be.err
	}
	return nil
}
