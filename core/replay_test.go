package core

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func replayed(t *testing.T, get func() (io.ReadCloser, error)) string {
	t.Helper()
	if get == nil {
		t.Fatal("no replay")
	}
	rc, _ := get()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func TestReplayBody(t *testing.T) {
	const body = "0123456789"
	t.Run("read to the end", func(t *testing.T) {
		b := newReplayBody(strings.NewReader(body), -1, 64)
		if got, _ := io.ReadAll(b); string(got) != body {
			t.Fatalf("first attempt read %q", got)
		}
		b.Close()
		get, ok := b.replay(t.Context(), false)
		if !ok || replayed(t, get) != body || replayed(t, get) != body {
			t.Errorf("replay ok=%v; want the body, every time", ok)
		}
	})
	t.Run("known length read without the final EOF", func(t *testing.T) {
		// A transport may stop at Content-Length without reading on to EOF.
		b := newReplayBody(strings.NewReader(body), int64(len(body)), 64)
		p := make([]byte, len(body))
		if n, _ := io.ReadFull(b, p); n != len(body) {
			t.Fatalf("read %d", n)
		}
		get, ok := b.replay(t.Context(), false)
		if !ok || replayed(t, get) != body {
			t.Errorf("replay ok=%v; want the whole body", ok)
		}
	})
	t.Run("partly read after an answer: no replay", func(t *testing.T) {
		b := newReplayBody(strings.NewReader(body), -1, 64)
		_, _ = b.Read(make([]byte, 4))
		b.Close()
		if _, ok := b.replay(t.Context(), false); ok {
			t.Error("replayed a body the client may still be holding back while it waits for the answer")
		}
	})
	t.Run("partly read, failed before any answer: the rest is read", func(t *testing.T) {
		b := newReplayBody(strings.NewReader(body), -1, 64)
		_, _ = b.Read(make([]byte, 4))
		b.Close()
		get, ok := b.replay(t.Context(), true)
		if !ok || replayed(t, get) != body {
			t.Errorf("replay ok=%v; want the whole body", ok)
		}
	})
	t.Run("never read, failed before any answer", func(t *testing.T) {
		b := newReplayBody(strings.NewReader(body), -1, 64)
		b.Close()
		get, ok := b.replay(t.Context(), true)
		if !ok || replayed(t, get) != body {
			t.Errorf("replay ok=%v; want the whole body", ok)
		}
	})
	t.Run("over the limit while streaming: copy dropped", func(t *testing.T) {
		big := bytes.Repeat([]byte("x"), 100)
		b := newReplayBody(bytes.NewReader(big), -1, 64)
		if got, _ := io.ReadAll(b); !bytes.Equal(got, big) {
			t.Fatalf("first attempt got %d bytes; want all %d streamed", len(got), len(big))
		}
		if b.buf != nil {
			t.Errorf("kept %d bytes of a body over the limit", len(b.buf))
		}
		if _, ok := b.replay(t.Context(), true); ok {
			t.Error("replayed a body over the limit")
		}
	})
	t.Run("over the limit when reading the rest", func(t *testing.T) {
		b := newReplayBody(strings.NewReader(strings.Repeat("y", 100)), -1, 64)
		b.Close()
		if _, ok := b.replay(t.Context(), true); ok {
			t.Error("replayed a body over the limit")
		}
	})
	t.Run("reads after close fail", func(t *testing.T) {
		b := newReplayBody(strings.NewReader(body), -1, 64)
		b.Close()
		if _, err := b.Read(make([]byte, 4)); err == nil {
			t.Error("read after close succeeded")
		}
	})
}
