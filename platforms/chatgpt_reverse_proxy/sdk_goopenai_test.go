package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"

	goopenai "github.com/sashabaranov/go-openai"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// These tests use github.com/sashabaranov/go-openai unchanged except for its
// base URL, against the real server (serve.Run) in front of a mock upstream.

func newGoOpenAI(t *testing.T, base, key string) *goopenai.Client {
	t.Helper()
	cfg := goopenai.DefaultConfig(key)
	cfg.BaseURL = base + "/v1"
	cfg.HTTPClient = newClient(t)
	return goopenai.NewClientWithConfig(cfg)
}

// startSDKProxy starts a mock upstream and the proxy in front of it.
func startSDKProxy(t *testing.T) (*openAIUpstream, string) {
	t.Helper()
	up := newOpenAIUpstream(t)
	base, _ := startInProcess(t, map[string]string{"OXY_TARGET": up.srv.URL})
	return up, base
}

func TestGoOpenAI_listModels(t *testing.T) {
	up, base := startSDKProxy(t)
	models, err := newGoOpenAI(t, base, testAPIKey).ListModels(context.Background())
	if err != nil {
		t.Fatalf("ListModels: %v", err)
	}
	var ids []string
	for _, m := range models.Models {
		ids = append(ids, m.ID)
	}
	if want := []string{chatModel, embeddingModel}; !slices.Equal(ids, want) {
		t.Errorf("ListModels IDs = %q; want %q", ids, want)
	}
	if got, want := up.requests(), []string{"GET /v1/models"}; !slices.Equal(got, want) {
		t.Errorf("upstream requests = %q; want %q", got, want)
	}
}

func TestGoOpenAI_chatCompletion(t *testing.T) {
	up, base := startSDKProxy(t)
	resp, err := newGoOpenAI(t, base, testAPIKey).CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{
		Model:    chatModel,
		Messages: []goopenai.ChatCompletionMessage{{Role: goopenai.ChatMessageRoleUser, Content: chatPrompt}},
	})
	if err != nil {
		t.Fatalf("CreateChatCompletion: %v", err)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Message.Content != chatAnswer {
		t.Errorf("choices = %+v; want one with content %q", resp.Choices, chatAnswer)
	}
	if resp.Usage.TotalTokens != 29 {
		t.Errorf("usage.total_tokens = %d; want 29", resp.Usage.TotalTokens)
	}
	if got := resp.Header().Get("X-Request-Id"); got != testRequestID {
		t.Errorf("x-request-id = %q; want %q", got, testRequestID)
	}
	if got, want := up.requests(), []string{"POST /v1/chat/completions"}; !slices.Equal(got, want) {
		t.Errorf("upstream requests = %q; want %q", got, want)
	}
}

// TestGoOpenAI_chatCompletionStream proves each delta reaches the SDK on its
// own: the upstream sends the next event only after the SDK returned the
// previous one from Recv.
func TestGoOpenAI_chatCompletionStream(t *testing.T) {
	up, base := startSDKProxy(t)
	stream, err := newGoOpenAI(t, base, testAPIKey).CreateChatCompletionStream(context.Background(), goopenai.ChatCompletionRequest{
		Model:    chatModel,
		Messages: []goopenai.ChatCompletionMessage{{Role: goopenai.ChatMessageRoleUser, Content: chatPrompt}},
		Stream:   true,
	})
	if err != nil {
		t.Fatalf("CreateChatCompletionStream: %v", err)
	}
	defer stream.Close()
	var deltas []string
	var finish goopenai.FinishReason
	events := 0
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Recv after %d events: %v", events, err)
		}
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
	if !slices.Equal(deltas, streamDeltas) {
		t.Errorf("deltas = %q; want %q", deltas, streamDeltas)
	}
	if events != streamEvents() {
		t.Errorf("got %d events; want %d", events, streamEvents())
	}
	if finish != goopenai.FinishReasonStop {
		t.Errorf("last finish_reason = %q; want stop", finish)
	}
}

func TestGoOpenAI_embeddings(t *testing.T) {
	_, base := startSDKProxy(t)
	resp, err := newGoOpenAI(t, base, testAPIKey).CreateEmbeddings(context.Background(), goopenai.EmbeddingRequest{
		Input: []string{embeddingInput},
		Model: goopenai.SmallEmbedding3,
	})
	if err != nil {
		t.Fatalf("CreateEmbeddings: %v", err)
	}
	if len(resp.Data) != 1 || !slices.Equal(resp.Data[0].Embedding, testEmbedding) {
		t.Errorf("embeddings = %+v; want one vector %v", resp.Data, testEmbedding)
	}
	if resp.Usage.PromptTokens != 11 {
		t.Errorf("usage.prompt_tokens = %d; want 11", resp.Usage.PromptTokens)
	}
}

// TestGoOpenAI_upstreamErrors checks that the upstream's 401 and 429 reach the
// SDK as *openai.APIError with their status, message, type and code.
func TestGoOpenAI_upstreamErrors(t *testing.T) {
	_, base := startSDKProxy(t)
	tests := []struct {
		name, key, model   string
		status             int
		message, typ, code string
	}{
		{"401", "sk-wrong", chatModel, http.StatusUnauthorized, invalidKeyText, "invalid_request_error", "invalid_api_key"},
		{"429", testAPIKey, rateLimitModel, http.StatusTooManyRequests, rateLimitText, "requests", "rate_limit_exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newGoOpenAI(t, base, tt.key).CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{
				Model:    tt.model,
				Messages: []goopenai.ChatCompletionMessage{{Role: goopenai.ChatMessageRoleUser, Content: chatPrompt}},
			})
			var apiErr *goopenai.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("error = %v (%T); want *openai.APIError", err, err)
			}
			if apiErr.HTTPStatusCode != tt.status || apiErr.Message != tt.message || apiErr.Type != tt.typ || apiErr.Code != tt.code {
				t.Errorf("got status %d, message %q, type %q, code %v; want %d, %q, %q, %q",
					apiErr.HTTPStatusCode, apiErr.Message, apiErr.Type, apiErr.Code, tt.status, tt.message, tt.typ, tt.code)
			}
		})
	}
}

// TestGoOpenAI_proxyError checks that an error made by the proxy itself (the
// upstream is down) is one the SDK parses: a 502 *openai.APIError with a
// message, type and code.
func TestGoOpenAI_proxyError(t *testing.T) {
	down := "http://127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	base, _ := startInProcess(t, map[string]string{"OXY_TARGET": down})
	_, err := newGoOpenAI(t, base, testAPIKey).ListModels(context.Background())
	var apiErr *goopenai.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error = %v (%T); want *openai.APIError", err, err)
	}
	if apiErr.HTTPStatusCode != http.StatusBadGateway || apiErr.Message == "" || apiErr.Type == "" || apiErr.Code == nil || apiErr.Code == "" {
		t.Errorf("got status %d, message %q, type %q, code %v; want 502 with all three set",
			apiErr.HTTPStatusCode, apiErr.Message, apiErr.Type, apiErr.Code)
	}
}
