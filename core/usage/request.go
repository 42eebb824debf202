package usage

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
)

// RequestModel reads the model a request names, for requests whose response
// does not (or is cut before it does): the top-level "model" of a JSON body,
// read as the body passes to the upstream, or the model in a Gemini or Azure
// OpenAI path.
type RequestModel struct {
	rc    io.ReadCloser
	pk    picker
	left  int
	model string
	arena [64]byte // the model name, while it fits
}

// maxRequestScan bounds how much of a request body is read for its model;
// clients put "model" first or near it, and the rest passes unread.
const maxRequestScan = 64 << 10

// NewRequestModel wraps a JSON request body; ModelFromPath covers the rest.
func NewRequestModel(rc io.ReadCloser) *RequestModel {
	r := &RequestModel{rc: rc, left: maxRequestScan}
	r.pk.init(r, r.arena[:])
	return r
}

func (r *RequestModel) record(p *picker) {
	if r.model == "" {
		r.model = unquote(p.value(slotModel))
	}
}

// Read reads the request body, looking for the model until it is found.
func (r *RequestModel) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if n > 0 && r.left > 0 && r.model == "" {
		chunk := p[:min(n, r.left)]
		r.left -= len(chunk)
		r.pk.feed(chunk)
		if r.pk.depth == 1 {
			r.record(&r.pk)
		}
		if r.model != "" || r.pk.st == psBroken {
			r.left = 0
		}
	}
	return n, err
}

// Close closes the request body.
func (r *RequestModel) Close() error { return r.rc.Close() }

// Model returns the model found so far, or "".
func (r *RequestModel) Model() string { return r.model }

// ModelFromPath returns the model a request path names: Gemini's
// /v1beta/models/MODEL:generateContent (and :streamGenerateContent,
// :countTokens, :embedContent...) and Azure OpenAI's
// /openai/deployments/DEPLOYMENT/..., whose deployment name stands for the
// model until the response names it.
func ModelFromPath(path string) string {
	if i := strings.Index(path, "/models/"); i >= 0 {
		m := path[i+len("/models/"):]
		if j := strings.IndexByte(m, ':'); j > 0 && strings.IndexByte(m[:j], '/') < 0 {
			return m[:j]
		}
	}
	if i := strings.Index(path, "/openai/deployments/"); i >= 0 {
		d := path[i+len("/openai/deployments/"):]
		if j := strings.IndexByte(d, '/'); j > 0 {
			return d[:j]
		}
	}
	return ""
}

// IsChatCompletions reports whether path is an OpenAI-style chat completions
// endpoint (/v1/chat/completions, Azure's
// /openai/deployments/D/chat/completions, a vendor's /openai/v1/...).
func IsChatCompletions(path string) bool {
	return strings.HasSuffix(strings.TrimSuffix(path, "/"), "/chat/completions")
}

// AddIncludeUsage returns body with stream_options.include_usage set to true
// when body is a JSON object with "stream": true that lacks it, so that
// OpenAI-style streams end with a usage chunk
// (https://platform.openai.com/docs/api-reference/chat/create#chat-create-stream_options).
// Every other byte stays as the client sent it. ok is false, and body should
// be sent as it is, when there is nothing to add (not streamed, include_usage
// already given either way, not a JSON object).
func AddIncludeUsage(body []byte) (out []byte, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var stream bool
	optStart, optEnd := -1, -1
	var opts json.RawMessage
	members := 0
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		members++
		end := int(dec.InputOffset())
		switch k {
		case "stream":
			stream = string(v) == "true"
		case "stream_options":
			opts, optStart, optEnd = v, end-len(v), end
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, false
	}
	closeAt := int(dec.InputOffset()) - 1
	if _, err := dec.Token(); err != io.EOF {
		return nil, false // trailing data: not one JSON object
	}
	if !stream {
		return nil, false
	}
	const add = `"include_usage":true`
	if optStart < 0 {
		ins := `"stream_options":{` + add + `}`
		if members > 0 {
			ins = "," + ins
		}
		return splice(body, closeAt, closeAt, ins), true
	}
	if string(opts) == "null" {
		return splice(body, optStart, optEnd, "{"+add+"}"), true
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(opts, &fields) != nil {
		return nil, false // not an object: the upstream will say so
	}
	if _, given := fields["include_usage"]; given {
		return nil, false
	}
	ins := add
	if len(fields) > 0 {
		ins += ","
	}
	at := optStart + bytes.IndexByte(opts, '{') + 1
	return splice(body, at, at, ins), true
}

func splice(b []byte, from, to int, s string) []byte {
	out := make([]byte, 0, len(b)-(to-from)+len(s))
	out = append(out, b[:from]...)
	out = append(out, s...)
	return append(out, b[to:]...)
}
