package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// These tests use github.com/openai/openai-go/v3 unchanged except for its base
// URL, against the real server (serve.Run) in front of a mock upstream.

func newOpenAIGo(t *testing.T, base, key string, opts ...option.RequestOption) *openai.Client {
	t.Helper()
	c := openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(base + "/v1/"),
		option.WithAPIKey(key),
		option.WithHTTPClient(newClient(t)),
	}, opts...)...)
	return &c
}

func chatParams(model string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(chatPrompt)},
	}
}

func TestOpenAIGo_listModels(t *testing.T) {
	up, base := startSDKProxy(t)
	page, err := newOpenAIGo(t, base, testAPIKey).Models.List(context.Background())
	if err != nil {
		t.Fatalf("Models.List: %v", err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if want := []string{chatModel, embeddingModel}; !slices.Equal(ids, want) {
		t.Errorf("model IDs = %q; want %q", ids, want)
	}
	if got, want := up.requests(), []string{"GET /v1/models"}; !slices.Equal(got, want) {
		t.Errorf("upstream requests = %q; want %q", got, want)
	}
}

func TestOpenAIGo_chatCompletion(t *testing.T) {
	up, base := startSDKProxy(t)
	var res *http.Response
	c, err := newOpenAIGo(t, base, testAPIKey).Chat.Completions.New(context.Background(), chatParams(chatModel), option.WithResponseInto(&res))
	if err != nil {
		t.Fatalf("Chat.Completions.New: %v", err)
	}
	if len(c.Choices) != 1 || c.Choices[0].Message.Content != chatAnswer {
		t.Errorf("choices = %+v; want one with content %q", c.Choices, chatAnswer)
	}
	if c.Usage.TotalTokens != 29 {
		t.Errorf("usage.total_tokens = %d; want 29", c.Usage.TotalTokens)
	}
	if got := res.Header.Get("X-Request-Id"); got != testRequestID {
		t.Errorf("x-request-id = %q; want %q", got, testRequestID)
	}
	if got, want := up.requests(), []string{"POST /v1/chat/completions"}; !slices.Equal(got, want) {
		t.Errorf("upstream requests = %q; want %q", got, want)
	}
}

// TestOpenAIGo_chatCompletionStream proves each delta reaches the SDK on its
// own: the upstream sends the next event only after Next returned the
// previous one.
func TestOpenAIGo_chatCompletionStream(t *testing.T) {
	up, base := startSDKProxy(t)
	stream := newOpenAIGo(t, base, testAPIKey).Chat.Completions.NewStreaming(context.Background(), chatParams(chatModel))
	defer stream.Close()
	var deltas []string
	var finish string
	events := 0
	for stream.Next() {
		chunk := stream.Current()
		events++
		up.ack()
		if len(chunk.Choices) != 1 {
			t.Fatalf("event %d has %d choices; want 1", events, len(chunk.Choices))
		}
		if c := chunk.Choices[0].Delta.Content; c != "" {
			deltas = append(deltas, c)
		}
		finish = chunk.Choices[0].FinishReason
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream after %d events: %v", events, err)
	}
	if !slices.Equal(deltas, streamDeltas) {
		t.Errorf("deltas = %q; want %q", deltas, streamDeltas)
	}
	if events != streamEvents() {
		t.Errorf("got %d events; want %d", events, streamEvents())
	}
	if finish != "stop" {
		t.Errorf("last finish_reason = %q; want stop", finish)
	}
}

func TestOpenAIGo_embeddings(t *testing.T) {
	_, base := startSDKProxy(t)
	resp, err := newOpenAIGo(t, base, testAPIKey).Embeddings.New(context.Background(), openai.EmbeddingNewParams{
		Model: openai.EmbeddingModelTextEmbedding3Small,
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{embeddingInput}},
	})
	if err != nil {
		t.Fatalf("Embeddings.New: %v", err)
	}
	var want []float64
	for _, f := range testEmbedding {
		want = append(want, float64(f))
	}
	if len(resp.Data) != 1 || !slices.Equal(resp.Data[0].Embedding, want) {
		t.Errorf("embeddings = %+v; want one vector %v", resp.Data, want)
	}
	if resp.Usage.PromptTokens != 11 {
		t.Errorf("usage.prompt_tokens = %d; want 11", resp.Usage.PromptTokens)
	}
}

// TestOpenAIGo_fileContent downloads a few MB of random bytes through
// Files.Content and compares them byte for byte.
func TestOpenAIGo_fileContent(t *testing.T) {
	up, base := startSDKProxy(t)
	res, err := newOpenAIGo(t, base, testAPIKey).Files.Content(context.Background(), testFileID)
	if err != nil {
		t.Fatalf("Files.Content: %v", err)
	}
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the file content after %d bytes: %v", len(got), err)
	}
	if !bytes.Equal(got, up.file) {
		t.Errorf("downloaded %d bytes, sha256 %x; want %d bytes, sha256 %x",
			len(got), sha256.Sum256(got), len(up.file), sha256.Sum256(up.file))
	}
	if got, want := res.Header.Get("Content-Type"), "application/octet-stream"; got != want {
		t.Errorf("Content-Type = %q; want %q", got, want)
	}
	if got, want := up.requests(), []string{"GET /v1/files/" + testFileID + "/content"}; !slices.Equal(got, want) {
		t.Errorf("upstream requests = %q; want %q", got, want)
	}
}

// TestOpenAIGo_upstreamErrors checks that the upstream's 401 and 429 reach the
// SDK as *openai.Error with their status, message, type, code and headers.
func TestOpenAIGo_upstreamErrors(t *testing.T) {
	_, base := startSDKProxy(t)
	tests := []struct {
		name, key, model    string
		status              int
		message, typ, code  string
		header, headerValue string
	}{
		{"401", "sk-wrong", chatModel, http.StatusUnauthorized, invalidKeyText, "invalid_request_error", "invalid_api_key", "", ""},
		{"429", testAPIKey, rateLimitModel, http.StatusTooManyRequests, rateLimitText, "requests", "rate_limit_exceeded", "X-Ratelimit-Remaining-Requests", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := newOpenAIGo(t, base, tt.key, option.WithMaxRetries(0))
			_, err := client.Chat.Completions.New(context.Background(), chatParams(tt.model))
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("error = %v (%T); want *openai.Error", err, err)
			}
			if apiErr.StatusCode != tt.status || apiErr.Message != tt.message || apiErr.Type != tt.typ || apiErr.Code != tt.code {
				t.Errorf("got status %d, message %q, type %q, code %q; want %d, %q, %q, %q",
					apiErr.StatusCode, apiErr.Message, apiErr.Type, apiErr.Code, tt.status, tt.message, tt.typ, tt.code)
			}
			if tt.header != "" {
				if got := apiErr.Response.Header.Get(tt.header); got != tt.headerValue {
					t.Errorf("%s = %q; want %q", tt.header, got, tt.headerValue)
				}
			}
		})
	}
}

// TestOpenAIGo_proxyError checks that an error made by the proxy itself (the
// upstream is down) is one the SDK parses: a 502 *openai.Error with a message,
// type and code.
func TestOpenAIGo_proxyError(t *testing.T) {
	down := "http://127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	base, _ := startInProcess(t, map[string]string{"OXY_TARGET": down})
	_, err := newOpenAIGo(t, base, testAPIKey, option.WithMaxRetries(0)).Models.List(context.Background())
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("error = %v (%T); want *openai.Error", err, err)
	}
	if apiErr.StatusCode != http.StatusBadGateway || apiErr.Message == "" || apiErr.Type == "" || apiErr.Code == "" {
		t.Errorf("got status %d, message %q, type %q, code %q; want 502 with all three set",
			apiErr.StatusCode, apiErr.Message, apiErr.Type, apiErr.Code)
	}
}
