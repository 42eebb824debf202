package usage

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// vendorCases are the vendors' own payload shapes (testdata, written from
// the vendors' API references) with the usage each must give.
var vendorCases = []struct {
	file, contentType string
	want              Usage
}{
	{"openai_chat.json", "application/json", Usage{Model: "gpt-4o-2024-08-06", Input: 1117, Output: 46, CachedInput: 1024, Reasoning: 12, Reported: all}},
	{"openai_chat_stream.sse", "text/event-stream; charset=utf-8", Usage{Model: "gpt-4o-mini-2024-07-18", Input: 9, Output: 2, Reported: all}},
	{"openai_chat_stream_no_usage.sse", "text/event-stream", Usage{Model: "gpt-4o-mini-2024-07-18"}},
	{"openai_completions.json", "application/json", Usage{Model: "gpt-3.5-turbo-instruct", Input: 5, Output: 7, Reported: FieldInput | FieldOutput}},
	{"openai_embeddings.json", "application/json", Usage{Model: "text-embedding-3-small", Input: 8, Reported: FieldInput}},
	{"openai_responses.json", "application/json", Usage{Model: "o4-mini-2025-04-16", Input: 36, Output: 87, CachedInput: 4, Reasoning: 64, Reported: all}},
	{"openai_responses_stream.sse", "text/event-stream", Usage{Model: "o4-mini-2025-04-16", Input: 36, Output: 87, CachedInput: 4, Reasoning: 64, Reported: all}},
	{"openai_responses_incomplete.sse", "text/event-stream", Usage{Model: "o4-mini-2025-04-16", Input: 36, Output: 87, CachedInput: 4, Reasoning: 64, Reported: all}},
	{"openai_responses_failed.sse", "text/event-stream", Usage{Model: "o4-mini-2025-04-16", Input: 36, Output: 87, CachedInput: 4, Reasoning: 64, Reported: all, StreamError: true}},
	// Input 2095 + cache writes 100 + cache reads 1800.
	{"anthropic_messages.json", "application/json", Usage{Model: "claude-sonnet-4-20250514", Input: 3995, Output: 503, CachedInput: 1800, Reported: FieldInput | FieldOutput | FieldCachedInput}},
	// message_start's input 25 + cache reads 2048; the last message_delta's output 15, not 1+7+15.
	{"anthropic_stream.sse", "text/event-stream", Usage{Model: "claude-sonnet-4-20250514", Input: 2073, Output: 15, CachedInput: 2048, Reported: FieldInput | FieldOutput | FieldCachedInput}},
	{"anthropic_stream_gateway.sse", "text/event-stream", Usage{Model: "claude-3-5-haiku-20241022", Input: 31, Output: 4, Reported: FieldInput | FieldOutput | FieldCachedInput}},
	{"anthropic_stream_error.sse", "text/event-stream", Usage{Model: "claude-opus-4-20250514", Input: 12, Output: 1, Reported: FieldInput | FieldOutput, StreamError: true}},
	// Input 8 + tool-use prompt 300; output 212 candidates + 1013 thoughts.
	{"gemini.json", "application/json; charset=UTF-8", Usage{Model: "gemini-2.5-flash", Input: 308, Output: 1225, CachedInput: 4, Reasoning: 1013, Reported: all}},
	// The last chunk's usageMetadata wins; CRLF separators.
	{"gemini_stream.sse", "text/event-stream", Usage{Model: "gemini-2.5-flash", Input: 8, Output: 52, Reasoning: 40, Reported: FieldInput | FieldOutput | FieldReasoning}},
	{"gemini_stream_array.json", "application/json; charset=UTF-8", Usage{Model: "gemini-2.5-flash", Input: 8, Output: 52, Reasoning: 40, Reported: FieldInput | FieldOutput | FieldReasoning}},
}

const all = FieldInput | FieldOutput | FieldCachedInput | FieldReasoning

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// chunkings split a body the ways a network can: whole, byte by byte, and
// at every small size, so that each boundary (inside a key, a number, an
// escape, a CRLF) is crossed.
var chunkings = map[string]func(io.Reader) io.Reader{
	"whole":    func(r io.Reader) io.Reader { return r },
	"one byte": iotest.OneByteReader,
	"half":     iotest.HalfReader,
	"3 bytes":  func(r io.Reader) io.Reader { return &sizedReader{r: r, n: 3} },
	"17 bytes": func(r io.Reader) io.Reader { return &sizedReader{r: r, n: 17} },
	"64 bytes": func(r io.Reader) io.Reader { return &sizedReader{r: r, n: 64} },
}

type sizedReader struct {
	r io.Reader
	n int
}

func (s *sizedReader) Read(p []byte) (int, error) {
	if len(p) > s.n {
		p = p[:s.n]
	}
	return s.r.Read(p)
}

// meterAll passes body through a metered Body the way the reverse proxy
// does (Read until EOF, then Close) and returns what came out and the usage.
func meterAll(t testing.TB, m *Meter, body io.Reader, contentType, encoding string) ([]byte, Usage) {
	t.Helper()
	b, ok := m.Body(io.NopCloser(body), contentType, encoding)
	if !ok {
		t.Fatalf("content type %q, encoding %q: not metered", contentType, encoding)
	}
	out, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return out, b.Usage()
}

func TestMeter_vendorShapes(t *testing.T) {
	m := New(Options{})
	for _, tc := range vendorCases {
		body := readFixture(t, tc.file)
		for name, chunk := range chunkings {
			t.Run(tc.file+"/"+name, func(t *testing.T) {
				out, got := meterAll(t, m, chunk(bytes.NewReader(body)), tc.contentType, "")
				if !bytes.Equal(out, body) {
					t.Fatalf("the body changed on the way through")
				}
				if got != tc.want {
					t.Errorf("got %+v; want %+v", got, tc.want)
				}
			})
		}
	}
}
