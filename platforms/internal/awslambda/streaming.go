package awslambda

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/aws/aws-lambda-go/events"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// Streaming serves a RESPONSE_STREAM function URL: the status and headers go
// out as soon as the upstream sends them, then the body as it arrives.
//
// It does what aws-lambda-go's lambdaurl.Wrap does, plus what Wrap lacks:
// cookies[] reach the handler, a panic is recovered instead of ending the
// process, an upstream body that fails midway is reported to Lambda as a
// function error instead of looking complete, 1xx responses are skipped, and
// the request URI is the client's.
type Streaming struct {
	next   http.Handler
	logger *slog.Logger
	server *http.Server
}

// NewStreaming returns the RESPONSE_STREAM handler around next, the proxy.
func NewStreaming(next http.Handler, logger *slog.Logger) *Streaming {
	return &Streaming{next: next, logger: logger, server: &http.Server{}}
}

// errStreamAborted ends a streamed body whose upstream failed midway. The
// runtime client turns a body read error into the Lambda-Runtime-Function-Error
// trailers, so the invocation is recorded as failed and the client's stream
// breaks instead of ending cleanly.
var errStreamAborted = errors.New("response aborted: the upstream failed or the deadline passed mid-body")

// Invoke starts serving one function URL event and returns once the status
// and headers are known; the body follows through the returned reader.
func (s *Streaming) Invoke(ctx context.Context, ev *events.LambdaFunctionURLRequest) (*events.LambdaFunctionURLStreamingResponse, error) {
	r, err := urlEvent(ev).newRequest()
	if err != nil {
		s.logger.Warn("invalid function URL event", "error", err)
		return streamError(core.InvalidEvent(err.Error())), nil
	}
	ctx, cancel := withInvocationDeadline(ctx)
	r = r.WithContext(serveAborting(ctx, s.server))
	pr, pw := io.Pipe()
	w := &streamWriter{header: http.Header{}, body: pw, ready: make(chan struct{})}
	go s.serve(cancel, w, r)
	<-w.ready
	return &events.LambdaFunctionURLStreamingResponse{
		StatusCode: w.status,
		Headers:    w.prelude,
		Cookies:    w.cookies,
		Body:       pr,
	}, nil
}

// serve runs the proxy. Whatever happens, it sends the prelude and ends the
// body: cleanly, with an error reply if nothing was sent yet, or with
// errStreamAborted.
func (s *Streaming) serve(cancel context.CancelFunc, w *streamWriter, r *http.Request) {
	defer cancel()
	defer func() {
		p := recover()
		if p != nil && p != http.ErrAbortHandler {
			logPanic(s.logger, p, debug.Stack())
		}
		switch {
		case !w.sent(): // a panic, or a handler that wrote nothing
			clear(w.header) // partial upstream headers
			core.WriteError(w, failure(r.Context(), orAbort(p)))
		case p != nil:
			if r.Context().Err() == context.DeadlineExceeded {
				s.logger.Warn("stream cut off before the invocation deadline; raise the function's timeout (at most 900 s)")
			}
			_ = w.body.CloseWithError(errStreamAborted)
			return
		}
		w.sendHeader(http.StatusOK)
		_ = w.body.Close()
	}()
	s.next.ServeHTTP(w, r)
}

// orAbort treats a handler that wrote nothing like an aborted response.
func orAbort(p any) any {
	if p == nil {
		return http.ErrAbortHandler
	}
	return p
}

// streamError is a complete streamed reply carrying e.
func streamError(e *core.APIError) *events.LambdaFunctionURLStreamingResponse {
	var buf bytes.Buffer
	w := &streamWriter{header: http.Header{}, body: nopPipe{&buf}, ready: make(chan struct{})}
	core.WriteError(w, e)
	return &events.LambdaFunctionURLStreamingResponse{StatusCode: w.status, Headers: w.prelude, Body: &buf}
}

// pipeWriter is the writing end of the body: an *io.PipeWriter, or a buffer
// for replies made up front.
type pipeWriter interface {
	io.Writer
	Close() error
	CloseWithError(error) error
}

type nopPipe struct{ io.Writer }

func (nopPipe) Close() error               { return nil }
func (nopPipe) CloseWithError(error) error { return nil }

// streamWriter is the http.ResponseWriter of a streamed reply. The first
// final status (or write) fixes the prelude; the body goes straight into the
// pipe the runtime reads, so every write reaches the client at once.
type streamWriter struct {
	header http.Header
	body   pipeWriter
	ready  chan struct{}
	once   sync.Once

	// Set once, before ready is closed.
	status  int
	prelude map[string]string
	cookies []string
}

func (w *streamWriter) Header() http.Header { return w.header }

// WriteHeader sends the prelude. 1xx responses (103 Early Hints) cannot be
// relayed through a function URL and are skipped.
func (w *streamWriter) WriteHeader(code int) {
	if code < http.StatusOK {
		return
	}
	w.sendHeader(code)
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.sendHeader(http.StatusOK)
	return w.body.Write(p)
}

// Flush does nothing: writes already go straight to the runtime.
func (w *streamWriter) Flush() {}

func (w *streamWriter) sent() bool {
	select {
	case <-w.ready:
		return true
	default:
		return false
	}
}

// sendHeader fixes the status and a copy of the headers (the reverse proxy
// adds trailers to the header map later, and the copy stays unshared), then
// releases Invoke.
func (w *streamWriter) sendHeader(code int) {
	w.once.Do(func() {
		w.status = code
		w.prelude = make(map[string]string, len(w.header))
		for k, v := range w.header {
			if k == "Set-Cookie" {
				w.cookies = append([]string(nil), v...)
				continue
			}
			if !isTrailer(k) {
				w.prelude[k] = strings.Join(v, ",")
			}
		}
		close(w.ready)
	})
}
