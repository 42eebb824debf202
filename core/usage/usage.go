// Package usage meters the tokens an AI API reports in its responses, as the
// bytes pass: OpenAI chat completions, legacy completions, embeddings and the
// Responses API (and every vendor that uses their shapes), Anthropic messages
// and Google Gemini generateContent, each as JSON or as a Server-Sent Events
// stream. It reads a copy of the body and never holds a byte back; memory per
// body is bounded whatever its size. It uses the standard library only.
//
// The figures are normalised to one meaning across vendors, the one the
// OpenTelemetry GenAI conventions give gen_ai.usage.*: input counts every
// input token, cached ones included; output counts every output token,
// reasoning ones included; cached input and reasoning are the parts of those
// that the vendor reported separately.
package usage

import (
	"fmt"
	"log/slog"
	"strconv"
)

// Field is a set of the counts a vendor reported.
type Field uint8

// The counts of a Usage.
const (
	FieldInput Field = 1 << iota
	FieldOutput
	FieldCachedInput
	FieldReasoning
)

// Usage is the token usage of one response, as far as it could be read.
type Usage struct {
	// Model is the model the response names (its first non-empty mention).
	Model string
	// Input counts every input (prompt) token, cached ones included.
	Input int64
	// Output counts every output token, reasoning ones included.
	Output int64
	// CachedInput is the part of Input read from the vendor's prompt cache.
	CachedInput int64
	// Reasoning is the part of Output spent on reasoning (thinking).
	Reasoning int64
	// Reported says which of the four counts the vendor reported.
	Reported Field
	// StreamError is set when a stream carried an error event (Anthropic's
	// event: error after a 200, the Responses API's error or response.failed).
	StreamError bool
	// Skipped, if not empty, says why the body was not read to its end:
	// "over_limit" (a JSON body longer than the meter's limit),
	// "not_json" (malformed), "decoder" (a compressed body that could not be
	// decoded, or whose decoder fell behind).
	Skipped string
}

// Has reports whether every count in f was reported.
func (u Usage) Has(f Field) bool { return u.Reported&f == f }

// LogAttrs returns the counts that were reported, as access-log attributes.
func (u Usage) LogAttrs(attrs []slog.Attr) []slog.Attr {
	if u.Has(FieldInput) {
		attrs = append(attrs, slog.Int64("input_tokens", u.Input))
	}
	if u.Has(FieldOutput) {
		attrs = append(attrs, slog.Int64("output_tokens", u.Output))
	}
	if u.Has(FieldCachedInput) {
		attrs = append(attrs, slog.Int64("cached_input_tokens", u.CachedInput))
	}
	if u.Has(FieldReasoning) {
		attrs = append(attrs, slog.Int64("reasoning_tokens", u.Reasoning))
	}
	return attrs
}

// count is a token count that may be absent from the JSON.
type count struct {
	n   int64
	set bool
}

func (c *count) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	// Counts are integers; strconv reads them without a second JSON pass.
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil || f < 0 || f > 1<<53 {
			return fmt.Errorf("usage: token count %s is not a number", b)
		}
		n = int64(f)
	}
	c.n, c.set = n, true
	return nil
}

// wireUsage holds every usage field of the OpenAI, Responses and Anthropic
// shapes (../shared/VENDORS.md, "Usage fields"), so one decode reads any of them.
type wireUsage struct {
	// OpenAI chat completions, completions, embeddings.
	// https://platform.openai.com/docs/api-reference/chat/object
	PromptTokens     count `json:"prompt_tokens"`
	CompletionTokens count `json:"completion_tokens"`
	PromptDetails    struct {
		CachedTokens count `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionDetails struct {
		ReasoningTokens count `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	// DeepSeek reports its cache hits here as well as, on newer
	// versions, in prompt_tokens_details.
	PromptCacheHit count `json:"prompt_cache_hit_tokens"`

	// OpenAI Responses API and Anthropic Messages.
	// https://platform.openai.com/docs/api-reference/responses/object
	// https://docs.anthropic.com/en/api/messages
	InputTokens  count `json:"input_tokens"`
	OutputTokens count `json:"output_tokens"`
	InputDetails struct {
		CachedTokens count `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputDetails struct {
		ReasoningTokens count `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	// Anthropic only: input_tokens excludes these two.
	CacheRead     count `json:"cache_read_input_tokens"`
	CacheCreation count `json:"cache_creation_input_tokens"`
}

func (w *wireUsage) anthropicLike() bool { return w.CacheRead.set || w.CacheCreation.set }

// wireGemini is Gemini's usageMetadata.
// https://ai.google.dev/api/generate-content#UsageMetadata
type wireGemini struct {
	Prompt     count `json:"promptTokenCount"`
	Candidates count `json:"candidatesTokenCount"`
	Cached     count `json:"cachedContentTokenCount"`
	Thoughts   count `json:"thoughtsTokenCount"`
	ToolPrompt count `json:"toolUsePromptTokenCount"`
}
