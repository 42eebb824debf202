package tencentscfevent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/rpc"
	"reflect"
	"testing"
	"time"

	"github.com/tencentyun/scf-go-lib/cloudfunction"
	"github.com/tencentyun/scf-go-lib/cloudfunction/messages"
	"github.com/tencentyun/scf-go-lib/functioncontext"
)

// Function must stay the same RPC service as scf-go-lib's: same method names
// and argument types, so the runtime's gob calls decode the same way.
func TestFunction_matchesLibraryService(t *testing.T) {
	lib := reflect.TypeOf((*cloudfunction.Function)(nil))
	ours := reflect.TypeOf((*Function)(nil))
	if lib.NumMethod() != ours.NumMethod() {
		t.Errorf("library Function has %d methods, ours %d", lib.NumMethod(), ours.NumMethod())
	}
	for i := range lib.NumMethod() {
		lm := lib.Method(i)
		om, ok := ours.MethodByName(lm.Name)
		if !ok {
			t.Errorf("method %s missing", lm.Name)
			continue
		}
		if lm.Type.NumIn() != om.Type.NumIn() || lm.Type.NumOut() != om.Type.NumOut() {
			t.Errorf("method %s: signature %v; library %v", lm.Name, om.Type, lm.Type)
			continue
		}
		for j := 1; j < lm.Type.NumIn(); j++ {
			if lm.Type.In(j) != om.Type.In(j) {
				t.Errorf("method %s argument %d: %v; library %v", lm.Name, j, om.Type.In(j), lm.Type.In(j))
			}
		}
	}
}

type handlerFunc func(context.Context, []byte) ([]byte, error)

func (f handlerFunc) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return f(ctx, payload)
}

func TestFunction_invokeContext(t *testing.T) {
	deadline := time.Now().Add(time.Hour).Truncate(time.Second)
	var gotDeadline time.Time
	var gotID string
	fn := &Function{handler: handlerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		gotDeadline, _ = ctx.Deadline()
		if fc, ok := functioncontext.FromContext(ctx); ok {
			gotID = fc.RequestID
		}
		return append([]byte("echo:"), payload...), nil
	})}
	var res messages.InvokeResponse
	err := fn.Invoke(&messages.InvokeRequest{Payload: []byte("x"), RequestId: "r-1",
		Deadline: messages.InvokeRequest_Timestamp{Seconds: deadline.Unix()}}, &res)
	if err != nil || res.Error != nil || string(res.Payload) != "echo:x" {
		t.Fatalf("Invoke = %v, %+v; want payload echo:x", err, res)
	}
	if !gotDeadline.Equal(deadline) || gotID != "r-1" {
		t.Errorf("handler saw deadline %v, request id %q; want %v, r-1", gotDeadline, gotID, deadline)
	}
}

func TestFunction_invokeErrors(t *testing.T) {
	tests := []struct {
		name       string
		handler    handlerFunc
		shouldExit bool
	}{
		{"error", func(context.Context, []byte) ([]byte, error) { return nil, errors.New("bad") }, false},
		{"panic", func(context.Context, []byte) ([]byte, error) { panic("boom") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res messages.InvokeResponse
			if err := (&Function{handler: tt.handler}).Invoke(&messages.InvokeRequest{}, &res); err != nil {
				t.Fatal(err)
			}
			if res.Error == nil || res.Error.ShouldExit != tt.shouldExit {
				t.Errorf("response error %+v; want one with ShouldExit %v", res.Error, tt.shouldExit)
			}
		})
	}
}

// On shutdown Serve stops accepting but lets a running invocation finish.
func TestServe_finishesRunningInvocations(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	h := handlerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		close(started)
		<-release
		return []byte("done"), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, h, time.Minute, slog.New(slog.DiscardHandler)) }()
	client, err := rpc.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	call := client.Go("Function.Invoke", &messages.InvokeRequest{}, &messages.InvokeResponse{}, nil)
	<-started
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v while an invocation was running", err)
	default:
	}
	close(release)
	<-call.Done
	if call.Error != nil || string(call.Reply.(*messages.InvokeResponse).Payload) != "done" {
		t.Errorf("running invocation: %v, %+v; want its reply", call.Error, call.Reply)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve returned %v; want nil", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Errorf("still accepting connections after shutdown")
	}
}
