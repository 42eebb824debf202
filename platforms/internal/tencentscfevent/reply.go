package tencentscfevent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// MaxReply is the largest reply an SCF event function may return
// synchronously: 6 MB, counted here on the encoded JSON (base64 bodies grow by
// a third). A larger answer is replaced by an error reply.
const MaxReply = 6_000_000

// Reply is the integrated-response JSON that the API gateway (with integrated
// response on) and function URLs turn into the HTTP response:
// https://cloud.tencent.com/document/product/583/12513.
//
// Headers values are strings, except Set-Cookie with more than one value,
// which is an array of strings: Tencent's API gateway accepts that form and
// sends one Set-Cookie line per element (serverless-components/tencent-express
// PR #7; Tencent's tencent-serverless-http adapter does the same), whereas
// joining cookies with commas corrupts them (RFC 6265, section 3).
type Reply struct {
	IsBase64Encoded bool           `json:"isBase64Encoded"`
	StatusCode      int            `json:"statusCode"`
	Headers         map[string]any `json:"headers"`
	Body            string         `json:"body"`
}

// errReplyTooLarge is returned by bufferedWriter.Write past its limit; the
// reverse proxy then aborts the response.
var errReplyTooLarge = errors.New("reply exceeds the event function limit")

// bufferedWriter is the http.ResponseWriter the proxy writes to: the whole
// response is kept in memory, up to a limit, and returned at the end.
type bufferedWriter struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	limit    int
	overflow bool
}

func newBufferedWriter(limit int) *bufferedWriter {
	return &bufferedWriter{header: http.Header{}, limit: limit}
}

func (w *bufferedWriter) Header() http.Header { return w.header }

// WriteHeader records the first final status. Informational (1xx) responses,
// such as 103 Early Hints relayed by the reverse proxy, cannot be expressed in
// a reply and are dropped.
func (w *bufferedWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

func (w *bufferedWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.body.Len()+len(p) > w.limit {
		w.overflow = true
		return 0, errReplyTooLarge
	}
	return w.body.Write(p)
}

// Flush does nothing: the reply goes out whole when the handler returns. It
// lets the reverse proxy's flushes for text/event-stream succeed.
func (w *bufferedWriter) Flush() {}

// replyHeaderSkip are response headers that describe the framing of a
// response the gateway frames itself.
var replyHeaderSkip = map[string]bool{"Content-Length": true, "Transfer-Encoding": true, "Connection": true, "Trailer": true}

// encode returns the reply JSON for the buffered response.
func (w *bufferedWriter) encode() ([]byte, error) {
	r := Reply{StatusCode: w.status, Headers: make(map[string]any, len(w.header))}
	for name, vals := range w.header {
		if len(vals) == 0 || replyHeaderSkip[name] || strings.HasPrefix(name, http.TrailerPrefix) {
			continue
		}
		if name == "Set-Cookie" && len(vals) > 1 {
			r.Headers[name] = append([]string(nil), vals...)
			continue
		}
		r.Headers[name] = strings.Join(vals, ", ")
	}
	body := w.body.Bytes()
	if isText(w.header, body) {
		r.Body = string(body)
	} else {
		r.IsBase64Encoded = true
		r.Body = base64.StdEncoding.EncodeToString(body)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

// isText reports whether body can travel as a JSON string unchanged: valid
// UTF-8, not content-encoded, and of a textual media type (or none). Anything
// else, such as audio from the speech API, goes base64.
func isText(h http.Header, body []byte) bool {
	if len(body) == 0 {
		return true
	}
	if ce := h.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return false
	}
	if !utf8.Valid(body) {
		return false
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	if strings.HasPrefix(mt, "text/") {
		return true
	}
	_, sub, _ := strings.Cut(mt, "/")
	switch {
	case sub == "json", strings.HasSuffix(sub, "+json"), sub == "x-ndjson", sub == "jsonl",
		sub == "xml", strings.HasSuffix(sub, "+xml"), sub == "javascript", sub == "x-www-form-urlencoded", sub == "yaml":
		return true
	}
	return false
}
