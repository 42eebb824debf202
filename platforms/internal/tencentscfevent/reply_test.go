package tencentscfevent

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

func TestIsText(t *testing.T) {
	tests := []struct {
		contentType, encoding string
		body                  string
		want                  bool
	}{
		{"application/json", "", `{"a":"你好"}`, true},
		{"application/json; charset=utf-8", "", `{}`, true},
		{"text/event-stream", "", "data: x\n\n", true},
		{"text/plain", "", "\x00\x01 control bytes are valid UTF-8", true},
		{"application/problem+json", "", "{}", true},
		{"application/x-ndjson", "", "{}\n", true},
		{"", "", "no type, valid UTF-8", true},
		{"", "", "", true},
		{"application/json", "", "\xff\xfe not UTF-8", false},
		{"application/json", "gzip", "compressed bytes", false},
		{"application/json", "identity", "{}", true},
		{"audio/mpeg", "", "ID3", false},
		{"application/octet-stream", "", "abc", false},
		{"image/png", "", "abc", false},
		{"bad/type/x;;", "", "abc", false},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.contentType != "" {
			h.Set("Content-Type", tt.contentType)
		}
		if tt.encoding != "" {
			h.Set("Content-Encoding", tt.encoding)
		}
		if got := isText(h, []byte(tt.body)); got != tt.want {
			t.Errorf("isText(%q, %q, %q) = %v; want %v", tt.contentType, tt.encoding, tt.body, got, tt.want)
		}
	}
}

func TestEncode_headers(t *testing.T) {
	w := newBufferedWriter(MaxReply)
	h := w.Header()
	h.Add("Set-Cookie", "a=1; Path=/")
	h.Add("Set-Cookie", "b=2; Path=/")
	h.Add("Vary", "Origin")
	h.Add("Vary", "Accept-Encoding")
	h.Set("Content-Length", "2")
	h.Set("Transfer-Encoding", "chunked")
	h.Set("Trailer", "X-Checksum")
	h.Set(http.TrailerPrefix+"X-Checksum", "abc")
	h.Set("X-Request-Id", "r1")
	w.WriteHeader(201)
	w.Write([]byte("ok"))
	got := decodeReply(t, w)
	want := map[string]any{
		"Set-Cookie":   []any{"a=1; Path=/", "b=2; Path=/"},
		"Vary":         "Origin, Accept-Encoding",
		"X-Request-Id": "r1",
	}
	if !reflect.DeepEqual(got.Headers, want) || got.StatusCode != 201 || got.Body != "ok" || got.IsBase64Encoded {
		t.Errorf("reply %+v; want status 201, body ok, headers %v", got, want)
	}
}

func TestEncode_singleSetCookieIsString(t *testing.T) {
	w := newBufferedWriter(MaxReply)
	w.Header().Set("Set-Cookie", "a=1")
	w.WriteHeader(200)
	if got := decodeReply(t, w).Headers["Set-Cookie"]; got != "a=1" {
		t.Errorf("Set-Cookie %#v; want the string a=1", got)
	}
}

func TestEncode_binaryBodyIsBase64(t *testing.T) {
	w := newBufferedWriter(MaxReply)
	w.Write([]byte{0xff, 0x00, 0x10})
	got := decodeReply(t, w)
	if !got.IsBase64Encoded || got.Body != "/wAQ" || got.StatusCode != 200 {
		t.Errorf("reply %+v; want status 200, base64 body /wAQ", got)
	}
}

func TestBufferedWriter_ignoresInformationalStatus(t *testing.T) {
	w := newBufferedWriter(MaxReply)
	w.WriteHeader(http.StatusEarlyHints)
	w.WriteHeader(http.StatusAccepted)
	w.WriteHeader(http.StatusTeapot)
	if w.status != http.StatusAccepted {
		t.Errorf("status %d; want 202", w.status)
	}
}

func TestBufferedWriter_limit(t *testing.T) {
	w := newBufferedWriter(4)
	if n, err := w.Write([]byte("1234")); n != 4 || err != nil {
		t.Fatalf("Write within the limit = %d, %v", n, err)
	}
	if _, err := w.Write([]byte("5")); err != errReplyTooLarge || !w.overflow {
		t.Errorf("Write past the limit = %v, overflow %v; want errReplyTooLarge, true", err, w.overflow)
	}
}

func decodeReply(t *testing.T, w *bufferedWriter) Reply {
	t.Helper()
	b, err := w.encode()
	if err != nil {
		t.Fatal(err)
	}
	var r Reply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("reply %q: %v", b, err)
	}
	return r
}
