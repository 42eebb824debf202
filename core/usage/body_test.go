package usage

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func gzipped(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestMeter_compressedBodies(t *testing.T) {
	m := New(Options{})
	body := readFixture(t, "anthropic_stream.sse")
	want := Usage{Model: "claude-sonnet-4-20250514", Input: 2073, Output: 15, CachedInput: 2048, Reported: FieldInput | FieldOutput | FieldCachedInput}
	var z, raw bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(body)
	zw.Close()
	fw, _ := flate.NewWriter(&raw, flate.BestSpeed)
	fw.Write(body)
	fw.Close()
	for _, tc := range []struct {
		encoding string
		wire     []byte
	}{
		{"gzip", gzipped(t, body)},
		{"GZIP", gzipped(t, body)},
		{"deflate", z.Bytes()},   // RFC 9110: zlib
		{"deflate", raw.Bytes()}, // what some servers send
	} {
		for name, chunk := range chunkings {
			out, got := meterAll(t, m, chunk(bytes.NewReader(tc.wire)), "text/event-stream", tc.encoding)
			if !bytes.Equal(out, tc.wire) {
				t.Fatalf("%s/%s: the compressed bytes changed on the way through", tc.encoding, name)
			}
			if got != want {
				t.Errorf("%s/%s: got %+v; want %+v", tc.encoding, name, got, want)
			}
		}
	}
}

func TestMeter_notMetered(t *testing.T) {
	m := New(Options{})
	for _, tc := range []struct{ contentType, encoding string }{
		{"audio/mpeg", ""},
		{"application/octet-stream", ""},
		{"", ""},
		{"application/json", "compress"},
		{"application/json", "gzip, br"}, // stacked codings
		{"application/json", "br"},       // no br decoder configured here
	} {
		if _, ok := m.Body(io.NopCloser(strings.NewReader("{}")), tc.contentType, tc.encoding); ok {
			t.Errorf("%q %q: metered; want passed untouched", tc.contentType, tc.encoding)
		}
	}
	m = New(Options{Decoders: map[string]Decoder{"BR": func(r io.Reader) (io.Reader, error) { return r, nil }}})
	if _, ok := m.Body(io.NopCloser(strings.NewReader("{}")), "application/json", "br"); !ok {
		t.Errorf("br with a configured decoder: not metered")
	}
}

// A JSON body over the limit passes whole and is not metered.
func TestMeter_jsonOverLimit(t *testing.T) {
	body := readFixture(t, "openai_chat.json")
	m := New(Options{MaxJSONBytes: int64(len(body) - 1)})
	out, got := meterAll(t, m, bytes.NewReader(body), "application/json", "")
	if !bytes.Equal(out, body) {
		t.Fatal("body changed")
	}
	if got.Reported != 0 || got.Skipped != "over_limit" {
		t.Errorf("got %+v; want nothing metered, skipped over_limit", got)
	}
	// One byte more, and it is metered.
	m = New(Options{MaxJSONBytes: int64(len(body))})
	if _, got := meterAll(t, m, bytes.NewReader(body), "application/json", ""); got.Input != 1117 || got.Skipped != "" {
		t.Errorf("at the limit: got %+v; want metered", got)
	}
	// Decoded bytes count: a small gzip of a large body is over the limit too.
	m = New(Options{MaxJSONBytes: int64(len(body) - 1)})
	if _, got := meterAll(t, m, bytes.NewReader(gzipped(t, body)), "application/json", "gzip"); got.Reported != 0 || got.Skipped != "over_limit" {
		t.Errorf("gzip over the limit: got %+v", got)
	}
}

// A body of any size is read in bounded memory: the meter keeps the kept
// values, never the body.
func TestMeter_boundedMemory(t *testing.T) {
	head := `{"object":"list","data":[`
	elem := `{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,-0.0028842222,0.1,0.2,0.3,"s\"tr"]},`
	tail := `{"index":1}],"model":"text-embedding-3-large","usage":{"prompt_tokens":123456,"total_tokens":123456}}`
	const n = 400_000 // about 40 MB
	r := io.MultiReader(strings.NewReader(head), &repeatReader{s: elem, n: n}, strings.NewReader(tail))
	m := New(Options{MaxJSONBytes: 1 << 30})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b, _ := m.Body(io.NopCloser(r), "application/json", "")
	buf := make([]byte, 32<<10)
	total := 0
	for {
		k, err := b.Read(buf)
		total += k
		if err != nil {
			break
		}
	}
	b.Close()
	got := b.Usage()
	runtime.ReadMemStats(&after)
	if got.Input != 123456 || got.Model != "text-embedding-3-large" {
		t.Fatalf("got %+v after %d bytes", got, total)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("metering a %d MB body allocated %d KB; want under 1 MB", total>>20, alloc>>10)
	}
}

type repeatReader struct {
	s   string
	n   int
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && r.n > 0 {
		c := copy(p[k:], r.s[r.off:])
		k += c
		r.off += c
		if r.off == len(r.s) {
			r.off, r.n = 0, r.n-1
		}
	}
	return k, nil
}

// A stream cut by the upstream is metered as far as it went, and the error
// reaches the caller unchanged.
func TestMeter_streamCutByUpstream(t *testing.T) {
	body := readFixture(t, "anthropic_stream.sse")
	cut := bytes.Index(body, []byte("event: message_delta"))
	cutErr := errors.New("connection reset by peer")
	for _, encoding := range []string{"", "gzip"} {
		wire := body[:cut]
		if encoding == "gzip" {
			full := gzipped(t, body)
			wire = full[:len(full)*2/3]
		}
		b, _ := New(Options{}).Body(io.NopCloser(io.MultiReader(bytes.NewReader(wire), iotest.ErrReader(cutErr))), "text/event-stream", encoding)
		out, err := io.ReadAll(b)
		if !errors.Is(err, cutErr) || !bytes.Equal(out, wire) {
			t.Fatalf("%s: got %d bytes, %v; want the %d bytes sent, then the upstream's error", encoding, len(out), err, len(wire))
		}
		b.Close()
		got := b.Usage()
		if got.Model != "claude-sonnet-4-20250514" || got.Input != 2073 || got.Skipped != "" {
			t.Errorf("%s: got %+v; want message_start's input counted", encoding, got)
		}
	}
}

// A client that goes away makes the proxy close the body early: metering
// ends with what was read.
func TestMeter_abandonedByClient(t *testing.T) {
	body := readFixture(t, "openai_responses_stream.sse")
	b, _ := New(Options{}).Body(io.NopCloser(bytes.NewReader(body)), "text/event-stream", "")
	buf := make([]byte, bytes.Index(body, []byte("event: response.output_text.delta")))
	if _, err := io.ReadFull(b, buf); err != nil {
		t.Fatal(err)
	}
	b.Close()
	got := b.Usage()
	if got.Model != "o4-mini-2025-04-16" || got.Reported != 0 {
		t.Errorf("got %+v; want the model of response.created and no usage", got)
	}
}

func TestMeter_malformed(t *testing.T) {
	m := New(Options{})
	for _, tc := range []struct{ contentType, body string }{
		{"application/json", `{"usage":{"prompt_tokens":3}, oops`},
		{"application/json", `<html>502 Bad Gateway</html>`},
		{"application/json", strings.Repeat("[", 100) + `{"usage":{}}`},
		{"text/event-stream", "data: {\"usage\":{\"prompt_tokens\":\n\ndata: {broken\n\n"},
		{"text/event-stream", "\xff\xfe\x00garbage\r\r\n:comment\n"},
	} {
		out, got := meterAll(t, m, strings.NewReader(tc.body), tc.contentType, "")
		if string(out) != tc.body {
			t.Errorf("%q: body changed", tc.body)
		}
		if got.Reported != 0 {
			t.Errorf("%q: got %+v; want nothing metered", tc.body, got)
		}
	}
	// A good event after a broken one still counts.
	_, got := meterAll(t, m, strings.NewReader("data: {broken\n\ndata: {\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":5}}\n\n"), "text/event-stream", "")
	if got.Input != 4 || got.Output != 5 {
		t.Errorf("after a broken event: got %+v", got)
	}
	// A usage object too large to be one is dropped, not kept.
	huge := `{"model":"m","usage":{"prompt_tokens":1,"pad":"` + strings.Repeat("x", maxValue) + `"}}`
	if _, got := meterAll(t, m, strings.NewReader(huge), "application/json", ""); got.Reported != 0 || got.Model != "m" {
		t.Errorf("oversized usage: got %+v", got)
	}
	// A corrupt gzip body is passed on and reported.
	if out, got := meterAll(t, m, strings.NewReader("not gzip at all"), "application/json", "gzip"); string(out) != "not gzip at all" || got.Skipped != "decoder" {
		t.Errorf("corrupt gzip: got %q, %+v", out, got)
	}
}

// A decoder that falls behind makes the meter give up; the reader is never
// made to wait for it.
func TestMeter_decoderBehindNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	slow := func(r io.Reader) (io.Reader, error) {
		<-release
		return r, nil
	}
	m := New(Options{Decoders: map[string]Decoder{"slow": slow}})
	body := bytes.Repeat([]byte("data: {}\n\n"), 300_000) // 3 MB, over maxQueued
	b, _ := m.Body(io.NopCloser(bytes.NewReader(body)), "text/event-stream", "slow")
	done := make(chan int)
	go func() {
		n, _ := io.Copy(io.Discard, b)
		done <- int(n)
	}()
	select {
	case n := <-done:
		if n != len(body) {
			t.Fatalf("read %d bytes; want %d", n, len(body))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reader waited for the decoder")
	}
	b.Close()
	close(release)
	if got := b.Usage(); got.Skipped != "decoder" {
		t.Errorf("got %+v; want skipped decoder", got)
	}
}
