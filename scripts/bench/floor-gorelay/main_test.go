package main

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// TestRelay_bothWays checks that the relay passes bytes both ways, larger than
// its buffer, and passes a half close on: the client's end of sending reaches
// the upstream, whose answer still comes back.
func TestRelay_bothWays(t *testing.T) {
	for _, mode := range []struct {
		name string
		copy func(dst, src net.Conn) error
	}{{"own buffers", ownCopy}, {"pooled", pooledCopy}} {
		t.Run(mode.name, func(t *testing.T) {
			saved := copyFn
			copyFn = mode.copy
			defer func() { copyFn = saved }()
			testRelay(t)
		})
	}
}

func testRelay(t *testing.T) {
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer upLn.Close()
	// The upstream reads everything to the client's half close, then
	// answers with what it read, reversed.
	go func() {
		c, err := upLn.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
			b[i], b[j] = b[j], b[i]
		}
		_, _ = c.Write(b)
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serve(ctx, ln, upLn.Addr().String()) }()
	defer func() {
		cancel()
		ln.Close()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := make([]byte, 3*bufSize+17)
	for i := range msg {
		msg[i] = byte(i)
	}
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(msg) {
		t.Fatalf("got %d bytes back; want %d", len(got), len(msg))
	}
	for i := range got {
		if got[i] != msg[len(msg)-1-i] {
			t.Fatalf("byte %d = %d; want %d", i, got[i], msg[len(msg)-1-i])
		}
	}
}
