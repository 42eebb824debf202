package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Paths of the mock OpenAI upstream. Every target forwards them unchanged.
const (
	pathChat     = "/v1/chat/completions"
	pathModels   = "/v1/models"
	pathUpload   = "/v1/files"
	pathDownload = "/v1/files/file-bench/content"
)

// chatRequest is a small non-streaming chat completion request.
var chatRequest = []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":16}`)

// streamRequest asks for a streamed completion.
var streamRequest = []byte(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Count to twenty."}]}`)

// chatResponse is a typical small completion, about 500 bytes.
var chatResponse = []byte(`{"id":"chatcmpl-bench0001","object":"chat.completion","created":1732579200,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! I hope you are having a wonderful day.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":14,"completion_tokens":12,"total_tokens":26,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}},"system_fingerprint":"fp_bench"}` + "\n")

var modelsResponse = []byte(`{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"system"}]}` + "\n")

// sseChunk is one streamed delta, about 200 bytes like OpenAI's. Its id
// carries the time it was written (nanoseconds since epoch), so that the
// harness, which also reads it, can tell each event's delay on the way.
const sseChunk = `data: {"id":"chatcmpl-%d","object":"chat.completion.chunk","created":1732579200,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{"content":"%d "},"logprobs":null,"finish_reason":null}]}` + "\n\n"

// epoch is the harness's clock origin for event timestamps.
var epoch = time.Now()

// upstream is the mock OpenAI API. Its stream shape is set before each stage;
// it counts the connections it accepts, to measure keep-alive reuse.
type upstream struct {
	srv      *http.Server
	addr     string
	newConns atomic.Int64
	download []byte

	// Stream shape: chunks events, spacing apart; the first goes out at once.
	chunks  atomic.Int64
	spacing atomic.Int64 // nanoseconds
	// held, when set, makes streams go on (ignoring chunks) until the
	// channel is closed.
	held atomic.Pointer[chan struct{}]
}

// holdStreams makes every stream opened from now on send events until the
// returned function is called, and the stream shape chunks, spacing again
// after that.
func (u *upstream) holdStreams(spacing time.Duration) (release func()) {
	chunks, old := u.chunks.Load(), time.Duration(u.spacing.Load())
	u.spacing.Store(int64(spacing))
	ch := make(chan struct{})
	u.held.Store(&ch)
	return func() {
		u.held.Store(nil)
		close(ch)
		u.setStream(int(chunks), old)
	}
}

func startUpstream(downloadSize int) (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the mock upstream: %w", err)
	}
	u := &upstream{addr: ln.Addr().String(), download: bytes.Repeat([]byte("0123456789abcdef"), downloadSize/16)}
	u.setStream(20, 10*time.Millisecond)
	u.srv = &http.Server{
		Handler: u,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				u.newConns.Add(1)
			}
		},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

func (u *upstream) setStream(chunks int, spacing time.Duration) {
	u.chunks.Store(int64(chunks))
	u.spacing.Store(int64(spacing))
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == pathChat:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if bytes.Contains(body, []byte(`"stream":true`)) {
			u.stream(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(chatResponse)))
		_, _ = w.Write(chatResponse)
	case r.Method == http.MethodGet && r.URL.Path == pathModels:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(modelsResponse)
	case r.Method == http.MethodPost && r.URL.Path == pathUpload:
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"file-bench","object":"file","bytes":%d}`+"\n", n)
	case r.Method == http.MethodGet && r.URL.Path == pathDownload:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(u.download)))
		_, _ = w.Write(u.download)
	default:
		http.NotFound(w, r)
	}
}

// stream sends the configured number of SSE events (or, while streams are
// held, events until they are released), flushing each, then
// "data: [DONE]". The first event goes out with the headers.
func (u *upstream) stream(w http.ResponseWriter, r *http.Request) {
	chunks, spacing := int(u.chunks.Load()), time.Duration(u.spacing.Load())
	var release <-chan struct{}
	if p := u.held.Load(); p != nil {
		chunks, release = math.MaxInt, *p
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
events:
	for i := range chunks {
		if i > 0 {
			t.Reset(spacing)
			select {
			case <-t.C:
			case <-release:
				break events
			case <-r.Context().Done():
				return
			}
		}
		if _, err := fmt.Fprintf(w, sseChunk, time.Since(epoch).Nanoseconds(), i); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
}
