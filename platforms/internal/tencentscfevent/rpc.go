package tencentscfevent

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/rpc"
	"reflect"
	"sync"
	"time"

	"github.com/tencentyun/scf-go-lib/cloudfunction"
	"github.com/tencentyun/scf-go-lib/cloudfunction/messages"
	"github.com/tencentyun/scf-go-lib/functioncontext"
)

// Function is the net/rpc service the SCF Go runtime calls, registered under
// the name "Function" with the methods Ping and Invoke and scf-go-lib's
// message types: the same service as the library's cloudfunction.Function.
//
// The library's cloudfunction.StartHandler listens on 0.0.0.0 only and
// registers on net/rpc's global server; Function lets Serve listen on any
// address (OXY_HOST, so tests use loopback) and shut down cleanly, with the
// same wire protocol.
type Function struct {
	handler cloudfunction.Handler
}

// Ping answers the runtime's liveness check.
func (f *Function) Ping(req *messages.PingRequest, res *messages.PingResponse) error {
	*res = messages.PingResponse{}
	return nil
}

// Invoke runs the handler on one event, as cloudfunction.Function.Invoke
// does: the invocation's deadline bounds the context, the function context
// (request id, limits) is attached, and a panic becomes an error response
// that asks the runtime to restart the process. One difference: the
// invocation's Environment is not copied into the process environment, since
// the settings were read and checked at startup.
func (f *Function) Invoke(req *messages.InvokeRequest, res *messages.InvokeResponse) error {
	defer func() {
		if p := recover(); p != nil {
			res.Error = &messages.InvokeResponse_Error{Message: "panic: " + describe(p), Type: "panic", ShouldExit: true}
		}
	}()
	ctx := context.Background()
	if req.Deadline.Seconds != 0 || req.Deadline.Nanos != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(req.Deadline.Seconds, req.Deadline.Nanos))
		defer cancel()
	}
	fc := &functioncontext.FunctionContext{
		RequestID:             req.RequestId,
		InvokedFunctionUnique: req.InvokedFunctionUnique,
		Namespace:             req.Namespace,
		FunctionName:          req.FunctionName,
		FunctionVersion:       req.FunctionVersion,
		MemoryLimitInMb:       req.MemoryLimitInMb,
		TimeLimitInMs:         req.TimeLimitInMs,
		TencentcloudRegion:    req.TencentcloudRegion,
		TencentcloudAppID:     req.TencentcloudAppID,
		TencentcloudUin:       req.TencentcloudUin,
		FunctionTrace:         req.FunctionTrace,
	}
	if len(req.ClientContext) > 0 {
		if err := json.Unmarshal(req.ClientContext, &fc.ClientContext); err != nil {
			res.Error = errorResponse(err)
			return nil
		}
	}
	payload, err := f.handler.Invoke(functioncontext.NewContext(ctx, fc), req.Payload)
	if err != nil {
		res.Error = errorResponse(err)
		return nil
	}
	res.Payload = payload
	return nil
}

func errorResponse(err error) *messages.InvokeResponse_Error {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return &messages.InvokeResponse_Error{Message: err.Error(), Type: t.Name()}
}

func describe(p any) string {
	if err, ok := p.(error); ok {
		return err.Error()
	}
	if s, ok := p.(string); ok {
		return s
	}
	return reflect.TypeOf(p).String()
}

// Serve answers the runtime's RPC calls on ln until ctx ends. Then it stops
// accepting, lets running invocations finish for up to grace, closes the
// connections and returns nil.
func Serve(ctx context.Context, ln net.Listener, handler cloudfunction.Handler, grace time.Duration, logger *slog.Logger) error {
	fn := &Function{handler: handler}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Function", fn); err != nil {
		return err
	}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				errc <- err
				return
			}
			mu.Lock()
			conns[conn] = true
			mu.Unlock()
			wg.Go(func() {
				srv.ServeConn(conn)
				mu.Lock()
				delete(conns, conn)
				mu.Unlock()
			})
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down", "grace", grace)
	_ = ln.Close()
	<-errc
	// Half-close each connection: net/rpc then reads no further request,
	// waits for the replies of running invocations to be written, and
	// returns from ServeConn. Closing outright could drop a finished reply.
	mu.Lock()
	for c := range conns {
		if hc, ok := c.(interface{ CloseRead() error }); !ok || hc.CloseRead() != nil {
			_ = c.Close()
		}
	}
	mu.Unlock()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		logger.Warn("grace period over, abandoning running invocations")
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	}
	logger.Info("stopped")
	return nil
}
