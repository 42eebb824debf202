package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// The mock upstream's fixtures, shaped like api.openai.com's answers.
const (
	testAPIKey      = "sk-proj-test-0123456789abcdef"
	testFileID      = "file-abc123"
	testRequestID   = "req_7f3c2a9d1e8b4c6a"
	rateLimitModel  = "gpt-4o-mini-rate-limited"
	chatModel       = "gpt-4o-mini"
	embeddingModel  = "text-embedding-3-small"
	chatPrompt      = "Say hello"
	chatAnswer      = "Hello! How can I help you today?"
	embeddingInput  = "The food was delicious and the waiter was friendly."
	rateLimitText   = "Rate limit reached for gpt-4o-mini in organization org-test on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s."
	invalidKeyText  = "Incorrect API key provided: sk-wrong. You can find your API key at https://platform.openai.com/account/api-keys."
	ackTimeout      = 20 * time.Second
	modelsListJSON  = `{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"system"},{"id":"text-embedding-3-small","object":"model","created":1705948997,"owned_by":"system"}]}`
	chatCompletionJ = `{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_06737a9306"}`
)

// streamDeltas are the content pieces of the streamed answer, one per event.
var streamDeltas = []string{"Hello", ",", " world", "!"}

// testEmbedding is the vector the mock returns; every value is exact in float32.
var testEmbedding = []float32{0.015625, -0.5, 0.25, 0.0078125, -0.03125}

// openAIUpstream is a mock of api.openai.com. It checks what each request
// carries (method, path, Host, Authorization, body) and answers like the real
// API. Its streamed chat answer waits, after each event, until the test says
// the client got that event: a proxy that buffered the stream would deadlock
// (and the upstream reports it) instead of passing.
type openAIUpstream struct {
	t    *testing.T
	srv  *httptest.Server
	file []byte        // content of testFileID
	acks chan struct{} // one per streamed event the client received

	mu   sync.Mutex
	seen []string // "METHOD /path" of each request
}

func newOpenAIUpstream(t *testing.T) *openAIUpstream {
	t.Helper()
	u := &openAIUpstream{t: t, file: make([]byte, 3<<20+12345), acks: make(chan struct{}, 16)}
	if _, err := rand.Read(u.file); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", u.models)
	mux.HandleFunc("POST /v1/chat/completions", u.chat)
	mux.HandleFunc("POST /v1/embeddings", u.embeddings)
	mux.HandleFunc("GET /v1/files/{id}/content", u.fileContent)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.t.Errorf("upstream got unexpected %s %s", r.Method, r.URL.RequestURI())
		writeOpenAIError(w, http.StatusNotFound, fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path), "invalid_request_error", "")
	})
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Method+" "+r.URL.Path)
		u.mu.Unlock()
		if r.Host != u.srv.Listener.Addr().String() {
			u.t.Errorf("upstream got Host %q; want the target's %q", r.Host, u.srv.Listener.Addr())
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+testAPIKey {
			writeOpenAIError(w, http.StatusUnauthorized, strings.ReplaceAll(invalidKeyText, "sk-wrong", strings.TrimPrefix(got, "Bearer ")), "invalid_request_error", "invalid_api_key")
			return
		}
		w.Header().Set("X-Request-Id", testRequestID)
		w.Header().Set("Openai-Processing-Ms", "112")
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// requests returns "METHOD /path" of every request the upstream got.
func (u *openAIUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

// ack tells the upstream that the client received one more streamed event.
func (u *openAIUpstream) ack() { u.acks <- struct{}{} }

func writeOpenAIError(w http.ResponseWriter, status int, message, typ, code string) {
	body, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": message, "type": typ, "param": nil, "code": nilIfEmpty(code),
	}})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func writeJSON(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, body)
}

// decodeJSON decodes a JSON request body, reporting a wrong content type or
// malformed JSON as a test failure and a 400.
func (u *openAIUpstream) decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		u.t.Errorf("%s %s: Content-Type %q; want application/json", r.Method, r.URL.Path, ct)
	}
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		u.t.Errorf("%s %s: decoding body: %v", r.Method, r.URL.Path, err)
		writeOpenAIError(w, http.StatusBadRequest, "We could not parse the JSON body of your request.", "invalid_request_error", "")
		return false
	}
	return true
}

func (u *openAIUpstream) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, modelsListJSON)
}

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Stream bool `json:"stream"`
}

func (u *openAIUpstream) chat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if !u.decodeJSON(w, r, &req) {
		return
	}
	if req.Model == rateLimitModel {
		h := w.Header()
		h.Set("Retry-After", "20")
		h.Set("X-Ratelimit-Limit-Requests", "3")
		h.Set("X-Ratelimit-Remaining-Requests", "0")
		h.Set("X-Ratelimit-Reset-Requests", "20s")
		writeOpenAIError(w, http.StatusTooManyRequests, rateLimitText, "requests", "rate_limit_exceeded")
		return
	}
	if req.Model != chatModel || len(req.Messages) != 1 || req.Messages[0].Role != "user" ||
		string(req.Messages[0].Content) != `"`+chatPrompt+`"` {
		u.t.Errorf("chat request: got model %q, messages %+v; want %s and one user message %q", req.Model, req.Messages, chatModel, chatPrompt)
	}
	if !req.Stream {
		writeJSON(w, chatCompletionJ)
		return
	}
	u.stream(w, r)
}

// stream answers a streamed chat completion the way the API does, one event
// per delta, and after each event waits until the client got it.
func (u *openAIUpstream) stream(w http.ResponseWriter, r *http.Request) {
	chunk := func(delta, finish string) string {
		return fmt.Sprintf(`{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_06737a9306","choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}]}`, delta, finish)
	}
	events := []string{chunk(`{"role":"assistant","content":"","refusal":null}`, "null")}
	for _, d := range streamDeltas {
		b, _ := json.Marshal(d)
		events = append(events, chunk(`{"content":`+string(b)+`}`, "null"))
	}
	events = append(events, chunk(`{}`, `"stop"`))
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	for i, ev := range events {
		_, _ = io.WriteString(w, "data: "+ev+"\n\n")
		if err := rc.Flush(); err != nil {
			u.t.Errorf("upstream flush: %v", err)
			return
		}
		select {
		case <-u.acks:
		case <-r.Context().Done():
			return
		case <-time.After(ackTimeout):
			u.t.Errorf("client did not get streamed event %d of %d within %v while the upstream waited: the proxy held it back", i+1, len(events), ackTimeout)
			return
		}
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
}

// streamEvents is how many events (acks) the streamed answer has.
func streamEvents() int { return len(streamDeltas) + 2 }

func (u *openAIUpstream) embeddings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		EncodingFormat string          `json:"encoding_format"`
	}
	if !u.decodeJSON(w, r, &req) {
		return
	}
	want, _ := json.Marshal([]string{embeddingInput})
	if req.Model != embeddingModel || string(req.Input) != string(want) {
		u.t.Errorf("embeddings request: got model %q, input %s; want %s, %s", req.Model, req.Input, embeddingModel, want)
	}
	var vector []byte
	switch req.EncodingFormat {
	case "base64": // little-endian float32s, as the API sends them
		raw := make([]byte, 0, 4*len(testEmbedding))
		for _, f := range testEmbedding {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
		}
		vector, _ = json.Marshal(base64.StdEncoding.EncodeToString(raw))
	case "", "float":
		vector, _ = json.Marshal(testEmbedding)
	default:
		u.t.Errorf("embeddings request: encoding_format %q", req.EncodingFormat)
	}
	writeJSON(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":`+string(vector)+
		`}],"model":"text-embedding-3-small","usage":{"prompt_tokens":11,"total_tokens":11}}`)
}

func (u *openAIUpstream) fileContent(w http.ResponseWriter, r *http.Request) {
	if id := r.PathValue("id"); id != testFileID {
		writeOpenAIError(w, http.StatusNotFound, "No such File object: "+id, "invalid_request_error", "")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="training.bin"`)
	// Written in pieces, as a file store streams it: no Content-Length.
	for b := u.file; len(b) > 0; {
		n := min(len(b), 256<<10)
		if _, err := w.Write(b[:n]); err != nil {
			return
		}
		b = b[n:]
	}
}
