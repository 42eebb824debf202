package core

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Benchmarks of what metering costs the handler, for docs/BENCHMARKS.md
// ("Usage metering"): the same handler with the meter on (as every build
// runs) and off (the baseline, meter removed), side by side in one run.
//
//	go test -run '^$' -bench Meter -benchmem -count 6 ./core ./core/usage

// streamEvents are a streamed chat completion with include_usage: 100
// content chunks, the usage chunk and [DONE], each sent on its own as the
// upstream flushes them.
var streamEvents = func() [][]byte {
	var evs [][]byte
	for range 100 {
		evs = append(evs, []byte(`data: {"id":"chatcmpl-AaB1","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":" there"},"logprobs":null,"finish_reason":null}],"usage":null}`+"\n\n"))
	}
	evs = append(evs, []byte(`data: {"id":"chatcmpl-AaB1","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":100,"total_tokens":109,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`+"\n\n"),
		[]byte("data: [DONE]\n\n"))
	return evs
}()

// eventBody returns one event per Read, like a connection the upstream
// flushes event by event.
type eventBody struct {
	evs [][]byte
	i   int
}

func (e *eventBody) Read(p []byte) (int, error) {
	if e.i == len(e.evs) {
		return 0, io.EOF
	}
	n := copy(p, e.evs[e.i])
	e.i++
	return n, nil
}

func (*eventBody) Close() error { return nil }

type streamTransport struct{}

func (streamTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/event-stream"}},
		ContentLength: -1,
		Body:          &eventBody{evs: streamEvents},
		Request:       r,
	}, nil
}

// flushWriter is discardWriter with Flush, as the platforms' writers have:
// the reverse proxy flushes after every event of a stream.
type flushWriter struct{ discardWriter }

func (*flushWriter) Flush() {}

func BenchmarkMetering(b *testing.B) {
	for _, tc := range []struct {
		name      string
		transport http.RoundTripper
		events    int
	}{
		{"smallJSON", fakeTransport{}, 0},
		{"stream102events", streamTransport{}, len(streamEvents)},
	} {
		for _, meter := range []string{"off", "on"} {
			b.Run(tc.name+"/meter="+meter, func(b *testing.B) {
				c := benchConfig(b, "https://api.openai.com")
				h := New(c, benchLoggers[0].logger(c), tc.transport)
				if meter == "off" {
					h.meter = nil
				}
				body := &resettableBody{}
				r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
				r.Header.Set("Authorization", "Bearer sk-bench")
				r.Header.Set("Content-Type", "application/json")
				r.ContentLength = int64(len(benchRequest))
				w := &flushWriter{discardWriter{h: http.Header{}}}
				b.ReportAllocs()
				for b.Loop() {
					body.Reset(benchRequest)
					r.Body = body
					clear(w.h)
					w.status = 0
					h.ServeHTTP(w, r)
					if w.status != http.StatusOK {
						b.Fatalf("status %d", w.status)
					}
				}
				if tc.events > 0 {
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(tc.events), "ns/event")
				}
			})
		}
	}
}

// The benchmark's stream is metered as a real one: its usage reaches the
// Exchange (a benchmark of a meter that reads nothing would prove nothing).
func TestMetering_benchmarkStreamIsMetered(t *testing.T) {
	c, err := FromEnv(func(string) (string, bool) { return "", false }, Options{})
	if err != nil {
		t.Fatal(err)
	}
	obs := &exchangeRecorder{}
	h := New(c, nil, streamTransport{}, WithObserver(obs))
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(benchRequest))
	r.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(&flushWriter{discardWriter{h: http.Header{}}}, r)
	if len(obs.finished) != 1 || obs.finished[0].Usage.Output != 100 || obs.finished[0].Model != "gpt-4o-mini-2024-07-18" {
		t.Fatalf("exchanges %+v; want one with 100 output tokens", obs.finished)
	}
}
