package decoders

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"

	"github.com/andybalholm/brotli"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core/usage"
	"github.com/klauspost/compress/zstd"
)

// An OpenAI chat completion, as the meter's own tests use.
var chat = []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how may I assist you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`)

var stream = []byte("data: {\"model\":\"gpt-4o-mini\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n" +
	"data: {\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n")

func brotliOf(b []byte) []byte {
	var buf bytes.Buffer
	w := brotli.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zstdOf(b []byte) []byte {
	w, _ := zstd.NewWriter(nil)
	return w.EncodeAll(b, nil)
}

func TestDecoders_meterReadsBrAndZstd(t *testing.T) {
	m := usage.New(usage.Options{Decoders: All()})
	for _, tc := range []struct {
		encoding, contentType string
		wire                  []byte
		input, output         int64
	}{
		{"br", "application/json", brotliOf(chat), 19, 10},
		{"zstd", "application/json", zstdOf(chat), 19, 10},
		{"br", "text/event-stream", brotliOf(stream), 7, 3},
		{"zstd", "text/event-stream", zstdOf(stream), 7, 3},
	} {
		b, ok := m.Body(io.NopCloser(iotest.HalfReader(bytes.NewReader(tc.wire))), tc.contentType, tc.encoding)
		if !ok {
			t.Fatalf("%s: not metered", tc.encoding)
		}
		out, err := io.ReadAll(b)
		if err != nil || !bytes.Equal(out, tc.wire) {
			t.Fatalf("%s: the encoded bytes changed on the way through (%v)", tc.encoding, err)
		}
		b.Close()
		u := b.Usage()
		if u.Input != tc.input || u.Output != tc.output || u.Skipped != "" {
			t.Errorf("%s %s: got %+v; want input %d, output %d", tc.encoding, tc.contentType, u, tc.input, tc.output)
		}
	}
}

// A zstd frame that asks for a window larger than HTTP allows is not decoded:
// the frame below (RFC 8878 section 3.1.1) declares a 64 MB window and holds
// one raw block, "hello".
func TestZstd_refusesHugeWindow(t *testing.T) {
	frame := []byte{
		0x28, 0xb5, 0x2f, 0xfd, // magic number
		0x00,             // frame header descriptor: no content size, not single segment
		16 << 3,          // window descriptor: exponent 16, window log 26 (64 MB)
		0x29, 0x00, 0x00, // last block, raw, 5 bytes
		'h', 'e', 'l', 'l', 'o',
	}
	d, _ := zstd.NewReader(nil)
	if out, err := d.DecodeAll(frame, nil); err != nil || string(out) != "hello" {
		t.Fatalf("the frame is not valid zstd: %q, %v", out, err)
	}
	r, err := Zstd(bytes.NewReader(frame))
	if err == nil {
		_, err = io.Copy(io.Discard, r)
	}
	if err == nil {
		t.Fatal("a 64 MB window was accepted")
	}
}
