package main

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	goopenai "github.com/sashabaranov/go-openai"
	"google.golang.org/genai"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

// TestRoutes_everyVendorSDKThroughOneProxy drives the vendors' own SDKs,
// unchanged except for their base URL, through one proxy at once: Anthropic
// (github.com/anthropics/anthropic-sdk-go) on /anthropic, Gemini
// (google.golang.org/genai) on /gemini, and both OpenAI SDKs on /openai and
// on the default target. Each presents the proxy key its own way; each mock
// upstream must see only its own real key, in its vendor's header, and each
// stream must reach the SDK event by event while the upstream holds back the
// next one.
func TestRoutes_everyVendorSDKThroughOneProxy(t *testing.T) {
	v := platformtest.StartVendors(t)
	base, logs := startInProcess(t, v.Env())
	ctx := context.Background()
	t.Run("sdks", func(t *testing.T) {
		t.Run("anthropic messages", func(t *testing.T) {
			t.Parallel()
			msg, err := newAnthropic(t, base).Messages.New(ctx, anthropicParams())
			if err != nil {
				t.Fatalf("Messages.New: %v", err)
			}
			if len(msg.Content) != 1 || msg.Content[0].Text != "Hello there" || msg.Usage.OutputTokens != 5 {
				t.Errorf("message = %+v; want the mock's answer", msg)
			}
		})
		t.Run("anthropic stream", func(t *testing.T) {
			t.Parallel()
			stream := newAnthropic(t, base).Messages.NewStreaming(ctx, anthropicParams())
			defer stream.Close()
			var types []string
			var text string
			for stream.Next() {
				ev := stream.Current()
				types = append(types, ev.Type)
				text += ev.Delta.Text
				heldBack(t, v.Anthropic, len(types))
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream: %v", err)
			}
			want := []string{"message_start", "content_block_start", "content_block_delta", "content_block_delta",
				"content_block_stop", "message_delta", "message_stop"}
			if !slices.Equal(types, want) || text != "Hello there" {
				t.Errorf("events %q, text %q; want %q, Hello there", types, text, want)
			}
		})
		t.Run("gemini generateContent", func(t *testing.T) {
			t.Parallel()
			res, err := newGenAI(t, base).Models.GenerateContent(ctx, "gemini-test", genai.Text("hi"), nil)
			if err != nil {
				t.Fatalf("GenerateContent: %v", err)
			}
			if res.Text() != "Hello there" || res.UsageMetadata.TotalTokenCount != 6 {
				t.Errorf("text %q, usage %+v; want the mock's answer", res.Text(), res.UsageMetadata)
			}
		})
		t.Run("gemini stream", func(t *testing.T) {
			t.Parallel()
			var texts []string
			for res, err := range newGenAI(t, base).Models.GenerateContentStream(ctx, "gemini-test", genai.Text("hi"), nil) {
				if err != nil {
					t.Fatalf("GenerateContentStream: %v", err)
				}
				texts = append(texts, res.Text())
				heldBack(t, v.Gemini, len(texts))
			}
			if want := []string{"Hello", " there"}; !slices.Equal(texts, want) {
				t.Errorf("chunks %q; want %q", texts, want)
			}
		})
		t.Run("openai-go on /openai", func(t *testing.T) {
			t.Parallel()
			c := openai.NewClient(option.WithBaseURL(base+"/openai/v1/"), option.WithAPIKey(platformtest.VendorProxyKey),
				option.WithHTTPClient(newClient(t)), option.WithMaxRetries(0))
			params := openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
			res, err := c.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatalf("Chat.Completions.New: %v", err)
			}
			if res.Choices[0].Message.Content != "Hello there" {
				t.Errorf("content %q; want Hello there", res.Choices[0].Message.Content)
			}
			stream := c.Chat.Completions.NewStreaming(ctx, params)
			defer stream.Close()
			var deltas []string
			for stream.Next() {
				deltas = append(deltas, stream.Current().Choices[0].Delta.Content)
				heldBack(t, v.OpenAI, len(deltas))
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream: %v", err)
			}
			if want := []string{"Hello", " there"}; !slices.Equal(deltas, want) {
				t.Errorf("deltas %q; want %q", deltas, want)
			}
		})
		t.Run("go-openai on the default target", func(t *testing.T) {
			t.Parallel()
			cfg := goopenai.DefaultConfig(platformtest.VendorProxyKey)
			cfg.BaseURL = base + "/v1"
			cfg.HTTPClient = newClient(t)
			c := goopenai.NewClientWithConfig(cfg)
			req := goopenai.ChatCompletionRequest{Model: "gpt-4o-mini", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}
			res, err := c.CreateChatCompletion(ctx, req)
			if err != nil {
				t.Fatalf("CreateChatCompletion: %v", err)
			}
			if res.Choices[0].Message.Content != "Hello there" {
				t.Errorf("content %q; want Hello there", res.Choices[0].Message.Content)
			}
			stream, err := c.CreateChatCompletionStream(ctx, req)
			if err != nil {
				t.Fatalf("CreateChatCompletionStream: %v", err)
			}
			defer stream.Close()
			var deltas []string
			for {
				chunk, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("Recv: %v", err)
				}
				deltas = append(deltas, chunk.Choices[0].Delta.Content)
				heldBack(t, v.Default, len(deltas))
			}
			if want := []string{"Hello", " there"}; !slices.Equal(deltas, want) {
				t.Errorf("deltas %q; want %q", deltas, want)
			}
		})
	})

	for _, tc := range []struct {
		name     string
		up       *platformtest.Vendor
		header   string
		key      string
		wantURIs []string
	}{
		{"anthropic", v.Anthropic, "X-Api-Key", platformtest.AnthropicKey, []string{"POST /v1/messages", "POST /v1/messages"}},
		{"gemini", v.Gemini, "X-Goog-Api-Key", platformtest.GeminiKey,
			[]string{"POST /v1beta/models/gemini-test:generateContent", "POST /v1beta/models/gemini-test:streamGenerateContent?alt=sse"}},
		{"openai", v.OpenAI, "Authorization", "Bearer " + platformtest.OpenAIKey, []string{"POST /v1/chat/completions", "POST /v1/chat/completions"}},
		{"default", v.Default, "Authorization", "Bearer " + platformtest.DefaultKey, []string{"POST /v1/chat/completions", "POST /v1/chat/completions"}},
	} {
		var uris []string
		for _, s := range tc.up.Seen() {
			uris = append(uris, s.Method+" "+s.URI)
			platformtest.CheckOnlyKey(t, s, tc.header, tc.key)
		}
		slices.Sort(uris)
		if !slices.Equal(uris, tc.wantURIs) {
			t.Errorf("%s upstream got %q; want %q", tc.name, uris, tc.wantURIs)
		}
	}
	out := logs.String()
	for _, want := range []string{"route=anthropic", "route=gemini", "route=openai", "route=default", "caller=tester"} {
		if !strings.Contains(out, want) {
			t.Errorf("access log lacks %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{platformtest.VendorProxyKey, platformtest.AnthropicKey, platformtest.GeminiKey, platformtest.OpenAIKey, platformtest.DefaultKey} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains the key %q", secret)
		}
	}
}

// heldBack checks that the SDK got event n while the upstream, having sent
// exactly n chunks, was still holding back the next one, then releases it.
func heldBack(t *testing.T, up *platformtest.Vendor, n int) {
	t.Helper()
	if sent := up.Sent(); sent != n {
		t.Errorf("event %d reached the SDK when the upstream had sent %d chunks; want it delivered before the next was sent", n, sent)
	}
	if n < len(up.Chunks()) {
		up.Next()
	}
}

func newAnthropic(t *testing.T, base string) *anthropic.Client {
	c := anthropic.NewClient(aoption.WithBaseURL(base+"/anthropic/"), aoption.WithAPIKey(platformtest.VendorProxyKey),
		aoption.WithHTTPClient(newClient(t)), aoption.WithMaxRetries(0))
	return &c
}

func anthropicParams() anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     "claude-test",
		MaxTokens: 64,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
	}
}

func newGenAI(t *testing.T, base string) *genai.Client {
	t.Helper()
	c, err := genai.NewClient(context.Background(), &genai.ClientConfig{
		APIKey:      platformtest.VendorProxyKey,
		Backend:     genai.BackendGeminiAPI,
		HTTPClient:  newClient(t),
		HTTPOptions: genai.HTTPOptions{BaseURL: base + "/gemini/"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
