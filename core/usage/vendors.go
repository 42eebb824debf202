package usage

import (
	"bytes"
	"encoding/json"
	"maps"
	"sync"
	"sync/atomic"
)

// accum turns the records of one response into its Usage. Each vendor shape
// is a few lines here; the picker finds the values whatever the shape.
type accum struct {
	u Usage
	// Anthropic's four counts, kept apart because message_start and
	// message_delta each report some of them.
	aIn, aRead, aCreate, aOut             int64
	aInSet, aReadSet, aCreateSet, aOutSet bool
}

// record reads one record: a JSON body, one element of a streamed array, or
// the data of one SSE event.
func (a *accum) record(p *picker) {
	typ := p.value(slotType)
	if isString(typ, "error") || isString(typ, "response.failed") {
		// Anthropic's mid-stream error (overloaded_error after a 200),
		// the Responses API's error event and failed response.
		a.u.StreamError = true
	}
	for _, s := range [...]slot{slotModel, slotMessageModel, slotResponseModel, slotModelVersion} {
		a.setModel(p.value(s))
	}
	if v := p.value(slotMessageUsage); v != nil {
		a.anthropicUsage(v, false) // message_start
	}
	if v := p.value(slotUsage); v != nil {
		switch {
		case isString(typ, "message_delta"):
			a.anthropicUsage(v, true)
		case isString(typ, "message"):
			a.anthropicUsage(v, false)
		default:
			a.openAIUsage(v)
		}
	}
	if v := p.value(slotResponseUsage); v != nil {
		a.openAIUsage(v) // Responses API events
	}
	if v := p.value(slotGroqUsage); v != nil {
		a.openAIUsage(v)
	}
	if v := p.value(slotUsageMeta); v != nil {
		a.geminiUsage(v)
	}
}

// decode reads a kept usage object into out (see decode.go); a null one is
// not read.
func decode(v []byte, fs []field, out []count) bool {
	return !isNull(v) && decodeCounts(v, fs, out)
}

func isNull(v []byte) bool { return string(v) == "null" }

// openAIUsage reads the usage object of OpenAI's chat completions,
// completions and embeddings (prompt_tokens...) or of its Responses API
// (input_tokens...). The last one reported wins: a stream's final chunk
// carries the whole request's usage, earlier ones carry null.
func (a *accum) openAIUsage(v []byte) {
	if isNull(v) {
		return // the chunks before the last say "usage":null
	}
	var w wireUsage
	if !decode(v, usageFields, w[:]) {
		return
	}
	if w.anthropicLike() {
		// An Anthropic-shaped usage in a body without "type":"message"
		// (some gateways drop it).
		a.anthropicFrom(&w, false)
		return
	}
	u := &a.u
	u.Reported &^= FieldInput | FieldOutput | FieldCachedInput | FieldReasoning
	set := func(f Field, dst *int64, cs ...count) {
		for _, c := range cs {
			if c.set {
				*dst = c.n
				u.Reported |= f
				return
			}
		}
	}
	set(FieldInput, &u.Input, w[uPromptTokens], w[uInputTokens])
	set(FieldOutput, &u.Output, w[uCompletionTokens], w[uOutputTokens])
	set(FieldCachedInput, &u.CachedInput, w[uPromptCached], w[uInputCached], w[uPromptCacheHit])
	set(FieldReasoning, &u.Reasoning, w[uCompletionReasoning], w[uOutputReasoning])
}

// anthropicUsage reads an Anthropic usage object: message_start's (and a
// JSON message's) in full; message_delta's output_tokens, which is cumulative
// (the latest is the total, never a sum), and input counts only when not zero,
// since some gateways send zero in message_start and the real count in
// message_delta and others the reverse.
func (a *accum) anthropicUsage(v []byte, delta bool) {
	var w wireUsage
	if decode(v, usageFields, w[:]) {
		a.anthropicFrom(&w, delta)
	}
}

func (a *accum) anthropicFrom(w *wireUsage, delta bool) {
	take := func(dst *int64, c count, seen *bool) {
		if c.set && (!delta || c.n != 0 || !*seen) {
			*dst, *seen = c.n, true
		}
	}
	take(&a.aIn, w[uInputTokens], &a.aInSet)
	take(&a.aRead, w[uCacheRead], &a.aReadSet)
	take(&a.aCreate, w[uCacheCreation], &a.aCreateSet)
	if w[uOutputTokens].set {
		a.aOut, a.aOutSet = w[uOutputTokens].n, true
	}
	u := &a.u
	u.Reported &^= FieldInput | FieldOutput | FieldCachedInput | FieldReasoning
	if a.aInSet || a.aReadSet || a.aCreateSet {
		// OpenTelemetry's gen_ai.usage.input_tokens includes cache reads
		// and writes; Anthropic's input_tokens excludes both.
		u.Input, u.Reported = a.aIn+a.aRead+a.aCreate, u.Reported|FieldInput
	}
	if a.aReadSet {
		u.CachedInput, u.Reported = a.aRead, u.Reported|FieldCachedInput
	}
	if a.aOutSet {
		u.Output, u.Reported = a.aOut, u.Reported|FieldOutput
	}
}

// geminiUsage reads Gemini's usageMetadata. Every streamed chunk may carry a
// running one; the last counts. totalTokenCount is the sum of prompt,
// tool-use prompt, candidates and thoughts: the first two are input, the last
// two output.
func (a *accum) geminiUsage(v []byte) {
	var w wireGemini
	if !decode(v, geminiFields, w[:]) {
		return
	}
	u := &a.u
	u.Reported &^= FieldInput | FieldOutput | FieldCachedInput | FieldReasoning
	if w[gPrompt].set || w[gToolPrompt].set {
		u.Input, u.Reported = w[gPrompt].n+w[gToolPrompt].n, u.Reported|FieldInput
	}
	if w[gCandidates].set || w[gThoughts].set {
		u.Output, u.Reported = w[gCandidates].n+w[gThoughts].n, u.Reported|FieldOutput
	}
	if w[gCached].set {
		u.CachedInput, u.Reported = w[gCached].n, u.Reported|FieldCachedInput
	}
	if w[gThoughts].set {
		u.Reasoning, u.Reported = w[gThoughts].n, u.Reported|FieldReasoning
	}
}

// isString reports whether the kept value v is the JSON string s.
func isString(v []byte, s string) bool {
	return len(v) == len(s)+2 && v[0] == '"' && string(v[1:len(v)-1]) == s
}

// setModel records the first model name a response gives: a chunked stream
// names it in every chunk, always the same, so later ones are not read (and
// the SSE reader skips chunks that carry nothing else).
func (a *accum) setModel(v []byte) {
	if a.u.Model != "" || len(v) < 3 || v[0] != '"' {
		return
	}
	if m := unquote(v); m != "" {
		a.u.Model = m
	}
}

// unquote returns the string a kept JSON string value holds, or "" for any
// other value.
func unquote(v []byte) string {
	if len(v) < 2 || v[0] != '"' {
		return ""
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return internModel(v[1 : len(v)-1])
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}

// Model names are interned: answers name a handful of models, and a shared
// string spares each request the allocation of its own. The table holds the
// first maxInterned names of at most maxInternedLen bytes, so a client that
// invents names cannot grow it; past that, names are allocated as before.
const (
	maxInterned    = 256
	maxInternedLen = 64
)

var interned struct {
	mu    sync.Mutex // serialises writers
	names atomic.Pointer[map[string]string]
}

// internModel returns the string b holds.
func internModel(b []byte) string {
	names := internedNames()
	if s, ok := names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(s) > maxInternedLen || len(names) >= maxInterned {
		return s // the table is full for good: no lock to find that out
	}
	interned.mu.Lock()
	defer interned.mu.Unlock()
	if names = internedNames(); len(names) < maxInterned {
		m := make(map[string]string, len(names)+1)
		maps.Copy(m, names)
		m[s] = s
		interned.names.Store(&m)
	}
	return s
}

func internedNames() map[string]string {
	if m := interned.names.Load(); m != nil {
		return *m
	}
	return nil
}
