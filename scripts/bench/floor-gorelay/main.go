// Command floor-gorelay is a reference program of the benchmark harness
// (go run ./scripts/bench -floors), not a product build: the floor of Go's
// goroutine-per-connection network model, below any HTTP implementation
// written the standard Go way. It relays TCP: for each accepted connection it
// dials the upstream and copies both ways, one goroutine per direction, each
// through its own 4 KiB buffer. The connections are wrapped so that io.Copy
// cannot hand the copy to the kernel (splice, sendfile): every byte passes
// through user space, as it would through an HTTP parser.
//
// With -pool, a direction holds no buffer while it waits: it waits for the
// socket to be readable (syscall.RawConn), then takes a 4 KiB buffer from a
// pool shared by all connections for one read and its write, and gives it
// back, as nginx and HAProxy take buffers only while data is in flight. The
// goroutines stay.
//
//	floor-gorelay [-pool] -listen 127.0.0.1:8080 -upstream 127.0.0.1:9090
//
// BENCH_CPUPROFILE and BENCH_MEMPROFILE ask for profiles (see
// scripts/bench/internal/benchprof).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/scripts/bench/internal/benchprof"
)

// bufSize is each direction's copy buffer.
const bufSize = 4 << 10

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "upstream host:port")
	pool := flag.Bool("pool", false, "take a buffer only once the socket is readable, from a shared pool, instead of one per direction")
	flag.Parse()
	if *pool {
		copyFn = pooledCopy
	}
	if err := run(*listen, *upstream); err != nil {
		fmt.Fprintf(os.Stderr, "floor-gorelay: error: %v\n", err)
		os.Exit(1)
	}
}

func run(listen, upstream string) error {
	if upstream == "" {
		return errors.New("-upstream: want host:port")
	}
	stopProfile, err := benchprof.Start("floor-gorelay")
	if err != nil {
		return err
	}
	defer stopProfile()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = ln.Close()
	}()
	return serve(ctx, ln, upstream)
}

// serve relays every connection ln accepts to upstream until ln is closed.
func serve(ctx context.Context, ln net.Listener, upstream string) error {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("accepting: %w", err)
		}
		go relay(ctx, dialer, c, upstream)
	}
}

// relay copies c to a new connection to upstream and back: the upstream's
// answer in this goroutine, the client's bytes in a second one. When either
// side ends its sending, the other side's sending is shut down in turn, and
// both connections close once both directions are done.
func relay(ctx context.Context, dialer *net.Dialer, c net.Conn, upstream string) {
	defer c.Close()
	u, err := dialer.DialContext(ctx, "tcp", upstream)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(u, c)
	}()
	pipe(c, u)
	<-done
}

// copyFn is how pipe copies: ownCopy, or pooledCopy with -pool.
var copyFn = ownCopy

// pipe copies from src to dst, then ends dst's sending (a half close, as the
// other direction may still be busy).
func pipe(dst, src net.Conn) {
	err := copyFn(dst, src)
	if tc, ok := dst.(*net.TCPConn); ok && err == nil {
		_ = tc.CloseWrite()
		return
	}
	// An error on either side: end both.
	_ = dst.Close()
	_ = src.Close()
}

// ownCopy copies src to dst through a buffer of its own, held until the
// copy ends.
func ownCopy(dst, src net.Conn) error {
	buf := make([]byte, bufSize)
	// The wrappers hide ReadFrom and WriteTo, so io.CopyBuffer uses buf.
	_, err := io.CopyBuffer(writerOnly{dst}, readerOnly{src}, buf)
	return err
}

var buffers = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// pooledCopy copies src to dst, holding a buffer only from the read that
// fills it to the write that empties it: it waits for src to be readable
// with no buffer, and reads until the read finds nothing more.
func pooledCopy(dst, src net.Conn) error {
	rc, err := src.(syscall.Conn).SyscallConn()
	if err != nil {
		return err
	}
	for {
		var buf *[]byte
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			buf = buffers.Get().(*[]byte)
			n, rerr = syscall.Read(int(fd), *buf)
			if rerr == syscall.EAGAIN {
				buffers.Put(buf)
				buf = nil
				return false // wait until readable, holding nothing
			}
			return true
		})
		if err == nil {
			err = rerr
		}
		if err != nil || n <= 0 {
			if buf != nil {
				buffers.Put(buf)
			}
			if n == 0 && err == nil {
				return nil // EOF
			}
			return err
		}
		_, err = dst.Write((*buf)[:n])
		buffers.Put(buf)
		if err != nil {
			return err
		}
	}
}

type readerOnly struct{ io.Reader }

type writerOnly struct{ io.Writer }
