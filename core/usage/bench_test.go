package usage

import (
	"bytes"
	"io"
	"testing"
)

// Benchmarks of the meter's own cost, for docs/BENCHMARKS.md:
// go test -run '^$' -bench . -benchmem ./core/usage

// chatChunk is one streamed chat completion event as OpenAI sends it with
// include_usage on.
var chatChunk = []byte(`data: {"id":"chatcmpl-AaB1","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":" there"},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n")

// BenchmarkMeter_streamEvent is the cost of one event through a metered body,
// read as the reverse proxy reads it (one Read per event).
func BenchmarkMeter_streamEvent(b *testing.B) {
	for _, metered := range []bool{false, true} {
		name := "plain"
		if metered {
			name = "metered"
		}
		b.Run(name, func(b *testing.B) {
			src := &eventSource{event: chatChunk}
			var body io.ReadCloser = io.NopCloser(src)
			if metered {
				body, _ = New(Options{}).Body(body, "text/event-stream", "")
			}
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(chatChunk)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := body.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMeter_smallJSON is the cost of metering one small chat completion
// body, from wrapping to Usage.
func BenchmarkMeter_smallJSON(b *testing.B) {
	body := readFixture(b, "openai_chat.json")
	m := New(Options{})
	buf := make([]byte, 32<<10)
	r := bytes.NewReader(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(body)
		mb, _ := m.Body(io.NopCloser(r), "application/json", "")
		for {
			if _, err := mb.Read(buf); err != nil {
				break
			}
		}
		mb.Close()
		if u := mb.Usage(); u.Input != 1117 {
			b.Fatalf("got %+v", u)
		}
	}
}

// eventSource returns the same event on every Read, forever.
type eventSource struct{ event []byte }

func (s *eventSource) Read(p []byte) (int, error) { return copy(p, s.event), nil }
