// Package awslambda runs the proxy as an AWS Lambda function behind a function
// URL, in either of the URL's invoke modes: BUFFERED (the whole response is
// returned at once, at most 6 MB) or RESPONSE_STREAM (the body reaches the
// client as the upstream produces it, so SSE arrives token by token).
//
// A function cannot find out which mode its URL uses, so the setting
// OXY_LAMBDA_INVOKE_MODE must match it. See
// https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html and
// https://docs.aws.amazon.com/lambda/latest/dg/configuration-response-streaming.html.
package awslambda

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"
)

// InvokeModeSetting names the setting that selects the invoke mode.
const InvokeModeSetting = "OXY_LAMBDA_INVOKE_MODE"

// The invoke modes, named like the function URL's InvokeMode in lower case.
const (
	ModeBuffered       = "buffered"
	ModeResponseStream = "response_stream"
)

// Defaults are the Lambda presets: the invoke-mode setting, and the headers
// that Lambda adds to every function URL request (x-amzn-trace-id,
// x-amzn-tls-*, x-forwarded-for/-proto/-port), which never reach the upstream.
// core already removes X-Forwarded-For/-Host/-Proto; the prefix also covers
// X-Forwarded-Port.
func Defaults() core.Defaults {
	return core.Defaults{
		StripHeaderPrefixes: []string{"x-amzn-", "x-forwarded-"},
		Extra: []core.Setting{{
			Name:    InvokeModeSetting,
			Default: ModeBuffered,
			Usage:   "buffered or response_stream: must match the function URL's invoke mode (BUFFERED or RESPONSE_STREAM)",
			Check:   checkInvokeMode,
		}},
	}
}

func checkInvokeMode(v string) error {
	switch strings.ToLower(v) {
	case ModeBuffered, ModeResponseStream:
		return nil
	}
	return errors.New("must be buffered or response_stream, matching the function URL's invoke mode")
}

// Platform returns the AWS Lambda build: its presets and its runner, the
// Lambda runtime in the configured invoke mode.
func Platform() start.Platform {
	return start.Platform{Name: "awslambda", Defaults: Defaults(), NewRunner: NewRunner}
}

// Runner hands the core to the Lambda runtime (aws-lambda-go), through the
// handler of the configured invoke mode.
type Runner struct {
	mode   string
	logger *slog.Logger
}

var _ start.Runner = (*Runner)(nil)

// NewRunner is the Platform's start.Platform.NewRunner.
func NewRunner(cfg core.Config, logger *slog.Logger, _ core.LookupFunc) (start.Runner, error) {
	return &Runner{mode: strings.ToLower(cfg.Extra[InvokeModeSetting]), logger: logger}, nil
}

// LongLived is false: Lambda freezes the process between invocations.
func (r *Runner) LongLived() bool { return false }

// Handler returns the Lambda handler serving h in the configured invoke mode.
func (r *Runner) Handler(h http.Handler) lambda.Handler {
	if r.mode == ModeResponseStream {
		return lambda.NewHandler(NewStreaming(h, r.logger).Invoke)
	}
	return lambda.NewHandler(NewBuffered(h, r.logger).Invoke)
}

// Run hands h to the Lambda runtime, which serves invocations until the
// process ends (it exits by itself if the Runtime API fails). Run returns
// nil when ctx ends: Lambda sends SIGTERM only to stop the process.
func (r *Runner) Run(ctx context.Context, h http.Handler) error {
	r.logger.Info("invoke mode", "invoke_mode", r.mode)
	go lambda.Start(r.Handler(h))
	<-ctx.Done()
	return nil
}

// logPanic logs a handler panic other than the reverse proxy's deliberate
// http.ErrAbortHandler, with its stack, as net/http's server would.
func logPanic(logger *slog.Logger, p any, stack []byte) {
	logger.Error("panic serving request", "panic", fmt.Sprint(p), "stack", string(stack))
}
