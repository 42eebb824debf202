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

import "log/slog"

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
