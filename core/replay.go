package core

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// replayBody is the request body of a first attempt: it streams the client's
// body to the upstream as it arrives, exactly as without retries (no wait for
// the whole body, so an upstream may still answer while the client sends),
// and keeps a copy of up to limit bytes so that a retry can send it again.
//
// A retry needs the whole body. It has it when the first attempt read the
// body to its end (the usual case: the transport sends the whole body before
// the answer comes, or all its Content-Length), or, after a failed connect, by reading the rest itself
// once the transport has let go of the body. A body longer than limit drops
// its copy at once, so memory stays bounded, and is never retried.
type replayBody struct {
	src   io.Reader
	limit int
	want  int64 // the request's Content-Length; -1 if unknown

	mu       sync.Mutex
	buf      []byte
	n        int64         // bytes read from src
	over     bool          // more than limit bytes: buf dropped, no replay
	srcErr   error         // src's final error; io.EOF when it ended
	reading  bool          // a Read is in src.Read
	closed   bool          // the transport closed the body
	released chan struct{} // made by a replay that waits; closed once closed and no Read is in flight
}

// errBodyClosed is returned by reads after the transport closed the body.
var errBodyClosed = errors.New("request body closed")

// releaseWait bounds the wait for the transport to let go of a body after a
// failed attempt; the standard library's transport does so before RoundTrip
// returns an error, so this only guards other transports.
const releaseWait = time.Second

func newReplayBody(src io.Reader, contentLength, limit int64) *replayBody {
	b := &replayBody{src: src, want: contentLength, limit: int(min(limit, int64(maxInt)))}
	if contentLength > 0 && contentLength <= limit {
		b.buf = make([]byte, 0, contentLength) // one allocation for the whole copy
	}
	return b
}

// freed reports that the transport let go of the body: it closed it and no
// Read is in flight. b.mu is held.
func (b *replayBody) freed() bool { return b.closed && !b.reading }

// release wakes a replay waiting for the transport to let go. b.mu is held.
func (b *replayBody) release() {
	if b.released != nil && b.freed() {
		close(b.released)
		b.released = nil
	}
}

const maxInt = int(^uint(0) >> 1)

func (b *replayBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, errBodyClosed
	}
	if b.srcErr != nil {
		err := b.srcErr
		b.mu.Unlock()
		return 0, err
	}
	b.reading = true
	b.mu.Unlock()

	n, err := b.src.Read(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	b.keep(p[:n])
	if err != nil {
		b.srcErr = err
	}
	b.release()
	return n, err
}

// Close marks the body as closed by the transport. The client's body itself
// is closed by the reverse proxy when the request ends.
func (b *replayBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.release()
	return nil
}

// keep copies p into the replay buffer, or drops the buffer once the body
// is longer than the limit. b.mu is held.
func (b *replayBody) keep(p []byte) {
	b.n += int64(len(p))
	if b.over || len(p) == 0 {
		return
	}
	if len(b.buf)+len(p) > b.limit {
		b.over, b.buf = true, nil
		return
	}
	b.buf = append(b.buf, p...)
}

// replay returns the whole body for another attempt, and false when there is
// none to give: the body is over the limit, src failed, or (unless
// readRest) the first attempt did not read it to the end. With readRest (the
// first attempt failed before any answer, so nothing waits on the client)
// the rest of the body is read from the client once the transport let go.
func (b *replayBody) replay(ctx context.Context, readRest bool) (getBody func() (io.ReadCloser, error), ok bool) {
	b.mu.Lock()
	over, srcErr := b.over, b.srcErr
	// A body of known length is whole once that many bytes were read: a
	// transport need not read on to the end (HTTP/2 ends the stream there).
	whole := srcErr == io.EOF || b.want >= 0 && b.n == b.want
	b.mu.Unlock()
	switch {
	case over:
		return nil, false
	case whole:
		return b.getBody(), true
	case srcErr != nil || !readRest:
		return nil, false
	}
	b.mu.Lock()
	var released chan struct{}
	if !b.freed() {
		b.released = make(chan struct{})
		released = b.released
	}
	b.mu.Unlock()
	if released != nil {
		timer := time.NewTimer(releaseWait)
		defer timer.Stop()
		select {
		case <-released:
		case <-timer.C:
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
	// The transport is done with src: read the rest directly.
	b.mu.Lock()
	room := b.limit - len(b.buf)
	b.mu.Unlock()
	rest, err := io.ReadAll(io.LimitReader(b.src, int64(room)+1))
	b.mu.Lock()
	b.keep(rest)
	ok = err == nil && !b.over
	if ok {
		b.srcErr = io.EOF
	}
	b.mu.Unlock()
	if !ok {
		return nil, false
	}
	return b.getBody(), true
}

func (b *replayBody) getBody() func() (io.ReadCloser, error) {
	b.mu.Lock()
	buf := b.buf // never appended to once the body ended
	b.mu.Unlock()
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
}
