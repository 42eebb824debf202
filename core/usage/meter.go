package usage

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"strings"
	"sync"
)

// Decoder returns a reader of the decoded content of r, for one HTTP content
// coding. The meter decodes its own copy of a body; the client gets the
// upstream's bytes as they were.
type Decoder func(r io.Reader) (io.Reader, error)

// Options configure a Meter.
type Options struct {
	// MaxJSONBytes bounds how much of a JSON body (after decoding) is read:
	// a longer one is passed on and not metered. Zero means 32 MiB. SSE
	// streams have no bound: each event is read on its own.
	MaxJSONBytes int64
	// Decoders add content codings to the built-in gzip and deflate, by
	// their lower-case token ("br", "zstd").
	Decoders map[string]Decoder
}

// Meter reads token usage from response bodies. It is built once at start-up
// and safe for concurrent use.
type Meter struct {
	maxJSON  int64
	decoders map[string]Decoder
}

// DefaultMaxJSONBytes is the default of Options.MaxJSONBytes.
const DefaultMaxJSONBytes = 32 << 20

// maxQueued bounds the compressed bytes waiting for a body's decoder; a
// decoder that falls further behind stops metering rather than hold a byte.
const maxQueued = 1 << 20

// New returns a Meter.
func New(o Options) *Meter {
	m := &Meter{maxJSON: o.MaxJSONBytes, decoders: map[string]Decoder{
		"gzip":    gzipDecoder,
		"x-gzip":  gzipDecoder,
		"deflate": deflateDecoder,
	}}
	if m.maxJSON <= 0 {
		m.maxJSON = DefaultMaxJSONBytes
	}
	for k, d := range o.Decoders {
		m.decoders[strings.ToLower(k)] = d
	}
	return m
}

func gzipDecoder(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }

// deflateDecoder reads HTTP's "deflate", which RFC 9110 section 8.4.1.2
// defines as zlib; some servers send raw deflate instead, so both are read.
func deflateDecoder(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	h, err := br.Peek(2)
	if err != nil {
		return nil, err
	}
	if h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 {
		return zlib.NewReader(br)
	}
	return flate.NewReader(br), nil
}

// Kind is how a body is read.
type Kind uint8

// The kinds of body the meter reads.
const (
	NotMetered  Kind = iota
	JSON             // application/json, +json, JSON lines
	EventStream      // text/event-stream
)

// KindOf returns how a body with this Content-Type is read.
func KindOf(contentType string) Kind {
	mt := contentType
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.ToLower(strings.TrimSpace(mt))
	switch {
	case mt == "text/event-stream":
		return EventStream
	case mt == "application/json", strings.HasSuffix(mt, "+json"),
		mt == "application/x-ndjson", mt == "application/jsonl", mt == "application/json-seq":
		return JSON
	}
	return NotMetered
}

// Body wraps a response body so that the meter reads what passes. ok is
// false, and rc should be used as it is, for bodies the meter does not read:
// other content types, unknown or stacked content codings.
func (m *Meter) Body(rc io.ReadCloser, contentType, contentEncoding string) (b *Body, ok bool) {
	kind := KindOf(contentType)
	if kind == NotMetered {
		return nil, false
	}
	var dec Decoder
	if ce := strings.ToLower(strings.TrimSpace(contentEncoding)); ce != "" && ce != "identity" {
		if dec = m.decoders[ce]; dec == nil {
			return nil, false
		}
	}
	if kind == EventStream {
		// A stream reuses its buffers event after event: it needs no
		// arrays, which would only add to each held stream's memory.
		b = &Body{rc: rc, dec: dec}
		b.pk.init(&b.acc, nil)
		b.sse = sse{p: &b.pk, atStart: true, model: &b.acc.u.Model}
		return b, true
	}
	sb := &smallBody{}
	b = &sb.Body
	b.rc, b.dec, b.limit = rc, dec, m.maxJSON
	b.pending = sb.pending[:0]
	b.pk.init(&b.acc, sb.arena[:])
	return b, true
}

// smallBody is a JSON Body with the arrays that spare a small answer any
// allocation but this one: the first chunks' copy and the kept values.
type smallBody struct {
	Body
	pending [512]byte
	arena   [512]byte
}

// Body is a response body being metered. Each chunk is read by the meter
// when the next one is asked for (or at the end), after the caller has passed
// it on: no byte waits for the meter. A compressed body is decoded by its own
// goroutine from a bounded queue. Read and Close are for one goroutine, as
// with any body; Usage is called once the body is done with.
type Body struct {
	rc      io.ReadCloser
	pending []byte
	pk      picker
	sse     sse // a stream's reader (sse.p is nil for JSON), in the Body to spare an allocation
	acc     accum
	limit   int64 // JSON only: bytes left to read
	stopped bool  // the parser's owner gave up (see stop)
	skipped string
	eof     bool
	feedOff bool // the reader side stops copying chunks

	dec  Decoder
	q    *queue
	done chan struct{}

	ended bool
}

func (b *Body) isStream() bool { return b.sse.p != nil }

// Read reads from the upstream's body; the chunk returned is read by the
// meter at the next call.
func (b *Body) Read(p []byte) (int, error) {
	b.flush()
	n, err := b.rc.Read(p)
	if n > 0 && !b.feedOff {
		b.pending = append(b.pending, p[:n]...)
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Close closes the upstream's body.
func (b *Body) Close() error {
	err := b.rc.Close()
	b.end()
	return err
}

func (b *Body) flush() {
	if len(b.pending) == 0 {
		return
	}
	if b.dec != nil {
		b.feedOff = !b.push(b.pending)
	} else {
		b.read(b.pending)
		b.feedOff = b.stopped
	}
	b.pending = b.pending[:0]
}

// read feeds decoded bytes to the parser.
func (b *Body) read(p []byte) {
	if b.stopped {
		return
	}
	if b.isStream() {
		b.sse.feed(p)
		return
	}
	if int64(len(p)) > b.limit {
		b.stop("over_limit")
		return
	}
	b.limit -= int64(len(p))
	b.pk.feed(p)
	if b.pk.st == psBroken {
		b.stop("not_json")
	}
}

func (b *Body) stop(reason string) {
	b.stopped, b.skipped = true, reason
}

// end reads what is left and lets the decoder finish.
func (b *Body) end() {
	if b.ended {
		return
	}
	b.flush()
	b.ended = true
	b.pending = nil
	if b.q != nil {
		b.q.close(b.eof)
	}
}

// Usage ends the metering and returns what was read. Call it after the body
// is closed or read to its end; it waits for a compressed body's decoder,
// which has at most its bounded queue left to read.
func (b *Body) Usage() Usage {
	b.end()
	if b.done != nil {
		<-b.done
	}
	u := b.acc.u
	if b.sse.errEvent { // only a stream sets it
		u.StreamError = true
	}
	if u.Skipped == "" {
		u.Skipped = b.skipped
	}
	return u
}

// push queues compressed bytes for the decoder goroutine, starting it on
// the first chunk.
func (b *Body) push(p []byte) bool {
	if b.q == nil {
		b.q = newQueue()
		b.done = make(chan struct{})
		go b.decode()
	}
	return b.q.push(p)
}

// decode runs in its own goroutine: it owns the parser (pk, sse, acc,
// limit, stopped, skipped) until done is closed.
func (b *Body) decode() {
	defer close(b.done)
	defer b.q.abandon()
	r, err := b.dec(b.q)
	if err == nil {
		buf := make([]byte, 16<<10)
		for !b.stopped && err == nil {
			var n int
			n, err = r.Read(buf)
			b.read(buf[:n])
		}
	}
	switch {
	case b.q.behind():
		b.stop("decoder")
	case err != nil && err != io.EOF && !b.stopped && (b.q.wasWhole() || !errors.Is(err, io.ErrUnexpectedEOF)):
		// A body cut short is metered as far as it went; a body that
		// arrived whole but does not decode is reported.
		b.stop("decoder")
	}
}

// queue hands compressed chunks to a decoder goroutine without ever blocking
// the producer: past maxQueued bytes it gives up instead.
type queue struct {
	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte
	closed  bool // no more input
	whole   bool // the input ended at the body's end, not cut short
	fell    bool // the producer gave up
	stopped bool // the decoder gave up
}

func newQueue() *queue {
	q := &queue{}
	q.cond.L = &q.mu
	return q
}

var errBehind = errors.New("usage: decoder fell behind")

func (q *queue) push(p []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped || q.fell {
		return false
	}
	if len(q.buf)+len(p) > maxQueued {
		q.fell, q.buf = true, nil
		q.cond.Signal()
		return false
	}
	q.buf = append(q.buf, p...)
	q.cond.Signal()
	return true
}

func (q *queue) Read(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.buf) == 0 && !q.closed && !q.fell {
		q.cond.Wait()
	}
	switch {
	case q.fell:
		return 0, errBehind
	case len(q.buf) == 0:
		return 0, io.EOF
	}
	n := copy(p, q.buf)
	q.buf = q.buf[n:]
	if len(q.buf) == 0 {
		q.buf = q.buf[:0:0]
	}
	return n, nil
}

func (q *queue) close(whole bool) {
	q.mu.Lock()
	q.closed, q.whole = true, whole
	q.cond.Signal()
	q.mu.Unlock()
}

// abandon is the decoder's exit: later pushes are dropped.
func (q *queue) abandon() {
	q.mu.Lock()
	q.stopped, q.buf = true, nil
	q.mu.Unlock()
}

func (q *queue) behind() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.fell
}

func (q *queue) wasWhole() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed && q.whole
}
