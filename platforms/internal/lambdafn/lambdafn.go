// Package lambdafn runs the proxy as an AWS Lambda function behind a function
// URL, in either of the URL's invoke modes: BUFFERED (the whole response is
// returned at once, at most 6 MB) or RESPONSE_STREAM (the body reaches the
// client as the upstream produces it, so SSE arrives token by token).
//
// A function cannot find out which mode its URL uses, so the setting
// OXY_LAMBDA_INVOKE_MODE must match it. See
// https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html and
// https://docs.aws.amazon.com/lambda/latest/dg/configuration-response-streaming.html.
package lambdafn

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/serve"
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

// Setup parses the flags and settings and returns the Lambda handler for the
// configured invoke mode, ready for lambda.Start. It returns flag.ErrHelp
// after -h or -version.
func Setup(args []string, lookup core.LookupFunc, environ []string, stdout, stderr io.Writer) (lambda.Handler, error) {
	platform := serve.Platform{Name: "aws lambda", Defaults: Defaults()}
	cfg, logger, err := serve.Setup(platform, args, lookup, environ, stdout, stderr)
	if err != nil {
		return nil, err
	}
	proxy := core.New(cfg, logger, nil)
	mode := strings.ToLower(cfg.Extra[InvokeModeSetting])
	logger.Info("starting", "platform", platform.Name, "invoke_mode", mode,
		"target", cfg.Target.String(), "version", core.VersionString())
	if mode == ModeResponseStream {
		return lambda.NewHandler(NewStreaming(proxy, logger).Invoke), nil
	}
	return lambda.NewHandler(NewBuffered(proxy, logger).Invoke), nil
}

// Main runs the function: it hands the handler to the Lambda runtime, which
// never returns. Bad settings exit with status 1, bad flags with 2.
func Main() {
	h, err := Setup(os.Args[1:], os.LookupEnv, os.Environ(), os.Stdout, os.Stderr)
	if err != nil {
		serve.Exit(err)
	}
	lambda.Start(h)
}

// logPanic logs a handler panic other than the reverse proxy's deliberate
// http.ErrAbortHandler, with its stack, as net/http's server would.
func logPanic(logger *slog.Logger, p any, stack []byte) {
	logger.Error("panic serving request", "panic", fmt.Sprint(p), "stack", string(stack))
}
