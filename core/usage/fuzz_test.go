package usage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// FuzzPicker checks the incremental picker against encoding/json: for any
// valid JSON object, split anywhere, the kept "model" and "usage" are the
// bytes encoding/json finds. Invalid input must never panic. A kept usage,
// from any input, is decoded as encoding/json decodes it (checkDecode).
func FuzzPicker(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		b, _ := os.ReadFile(name)
		f.Add(b, uint16(len(b)/2))
	}
	f.Add([]byte(`{"model":"m","usage":{"a":[1,{"b":"}"}]},"x":"\"{"}`), uint16(9))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		cut := int(split) % (len(data) + 1)
		var got [numSlots][]byte
		records := 0
		p := newPicker(recordFunc(func(p *picker) {
			records++
			for s := range got {
				got[s] = append([]byte(nil), p.value(slot(s))...)
			}
		}))
		p.feed(data[:cut])
		p.feed(data[cut:])
		if got[slotUsage] != nil {
			// What the picker kept, valid JSON or not, read as the
			// vendors' rules read it.
			checkDecode(t, got[slotUsage])
		}
		if !json.Valid(data) || bytes.IndexByte(data, '\\') >= 0 {
			return // escaped keys are not read by the picker, by design
		}
		var doc map[string]json.RawMessage
		if json.Unmarshal(data, &doc) != nil {
			return // not an object
		}
		if records != 1 {
			t.Fatalf("%d records in one object", records)
		}
		for key, s := range map[string]slot{"model": slotModel, "usage": slotUsage, "type": slotType} {
			want, ok := doc[key]
			if !ok || len(want) > maxValue {
				continue
			}
			if !bytes.Equal(got[s], want) {
				t.Fatalf("%s: picker kept %q; encoding/json found %q", key, got[s], want)
			}
		}
	})
}

// recordFunc is a recorder written as a function.
type recordFunc func(*picker)

func (f recordFunc) record(p *picker) { f(p) }

// newPicker returns a picker with a small arena, so that values in the arena
// and values moved out of it are both read.
func newPicker(rec recorder) *picker {
	p := &picker{}
	p.init(rec, make([]byte, 100))
	return p
}

// FuzzDecodeCounts checks the usage decoder against encoding/json on any
// input: for both the usage object of OpenAI, Responses and Anthropic and
// Gemini's usageMetadata, it reads the same counts when encoding/json
// unmarshals the input without error into a struct of the fields, and
// nothing when encoding/json reports an error.
func FuzzDecodeCounts(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		b, _ := os.ReadFile(name)
		var doc map[string]json.RawMessage
		if json.Unmarshal(b, &doc) == nil {
			for _, k := range []string{"usage", "usageMetadata"} {
				if v, ok := doc[k]; ok {
					f.Add([]byte(v))
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkDecode(t, data) })
}

// decodeSeeds are inputs where a decoder written by hand is most likely to
// part from encoding/json.
var decodeSeeds = []string{
	`{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}`,
	`{"input_tokens":5,"output_tokens":6,"input_tokens_details":{"cached_tokens":1},"output_tokens_details":{"reasoning_tokens":2}}`,
	`{"input_tokens":5,"cache_read_input_tokens":7,"cache_creation_input_tokens":8,"output_tokens":1}`,
	`{"prompt_tokens":10,"prompt_cache_hit_tokens":6,"prompt_cache_miss_tokens":4}`,
	`{"promptTokenCount":3,"candidatesTokenCount":4,"cachedContentTokenCount":1,"thoughtsTokenCount":5,"toolUsePromptTokenCount":2}`,
	`{"prompt_tokens":12.0,"completion_tokens":1e3,"input_tokens":1.5,"output_tokens":-0.0}`,
	`{"prompt_tokens":-5}`, `{"prompt_tokens":-1.5}`, `{"prompt_tokens":1e400}`, `{"prompt_tokens":1e-400}`,
	`{"prompt_tokens":9223372036854775807}`, `{"prompt_tokens":9223372036854775808}`, `{"prompt_tokens":-9223372036854775808}`,
	`{"prompt_tokens":9007199254740993.0}`, `{"prompt_tokens":9007199254740992.0}`, `{"prompt_tokens":123456789012345678}`,
	`{"prompt_tokens":1234567890123456789}`, `{"prompt_tokens":99999999999999999999}`,
	`{"prompt_tokens":012}`, `{"prompt_tokens":1.}`, `{"prompt_tokens":.5}`, `{"prompt_tokens":1e}`, `{"prompt_tokens":+1}`,
	`{"prompt_tokens":-}`, `{"prompt_tokens":"12"}`, `{"prompt_tokens":true}`, `{"prompt_tokens":[1]}`, `{"prompt_tokens":{}}`,
	`{"prompt_tokens":null}`, `{"prompt_tokens":4,"prompt_tokens":null}`, `{"prompt_tokens":4,"prompt_tokens":5}`,
	`{"prompt_tokens":4,"PROMPT_TOKENS":5}`, `{"Prompt_Tokens":4}`, `{"prompt_tokenſ":4}`, `{"\u0070rompt_tokens":4}`,
	`{"cached_tokens":1,"prompt_tokens_details":{"cached_tokens":3},"prompt_tokens_details":{"audio_tokens":0}}`,
	`{"prompt_tokens_details":{"cached_tokens":3},"prompt_tokens_details":null}`, `{"prompt_tokens_details":3}`,
	`{"prompt_tokens_details":[]}`, `{"prompt_tokens_details":"x"}`, `{"prompt_tokens_details":{"cached_tokens":"3"}}`,
	`{"\u0075sage":1,"prompt_tokens":\u0031}`, `{"prompt_tokens\ud800":1}`, "{\"prompt_to\u212aens\":1}", "{\"prompt_token\u017f\":1}", `{"prompt_to\u212aens":1}`, `{"İnput_tokens":1}`, `{"ınput_tokens":1}`,
	`{"\u0130nput_tokens":1}`, `{"\u0131nput_tokens":1}`, `{"prompt_tokens\ud834\udd1e":1}`, `{"prompt_\/tokens":1}`,
	"{\"prompt_tokens\xff\":1}", "{\"prompt_tokens\":1,\"\xc3\":2}", `{"prompt_\u0074okens":1}`,
	"{\"prompt_tokens\":1,\"x\":\"\x01\"}", `{"prompt_tokens":1,"x":"\q"}`, `{"prompt_tokens":1,"x":"\u12"}`,
	`{"prompt_tokens":1,}`, `{"prompt_tokens":1 "x":2}`, `{"prompt_tokens":1}x`, ` {"prompt_tokens":1} `, `[]`, `null`, `3`,
	`{"x":[1,{"a":[true,false,null,"}"]},[]],"prompt_tokens":2}`, `{"x":[1,2,]}`, `{"x":{"a"}}`, `{"x":[1}`, `{"x":tru}`,
	`{"thoughtsTokenCount":5,"candidatesTokenCount":null}`, `{"promptTokenCount":1,"promptTokensDetails":[{"modality":"TEXT","tokenCount":1}]}`,
	`{"input_tokens":1,"output_tokens":2,"server_tool_use":{"web_search_requests":0},"service_tier":"standard"}`,
	`{"prompt_tokens":1,"x_groq":{"id":"req_01"}}`,
}

// refCount and refUsage are the decoder's reference: the encoding/json
// types it replaced.
type refCount struct {
	n   int64
	set bool
}

func (c *refCount) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
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

type refUsage struct {
	PromptTokens     refCount `json:"prompt_tokens"`
	CompletionTokens refCount `json:"completion_tokens"`
	PromptDetails    struct {
		CachedTokens refCount `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionDetails struct {
		ReasoningTokens refCount `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	PromptCacheHit refCount `json:"prompt_cache_hit_tokens"`
	InputTokens    refCount `json:"input_tokens"`
	OutputTokens   refCount `json:"output_tokens"`
	InputDetails   struct {
		CachedTokens refCount `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputDetails struct {
		ReasoningTokens refCount `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	CacheRead     refCount `json:"cache_read_input_tokens"`
	CacheCreation refCount `json:"cache_creation_input_tokens"`
}

func (r *refUsage) counts() wireUsage {
	return wireUsage{
		uPromptTokens: count(r.PromptTokens), uCompletionTokens: count(r.CompletionTokens),
		uPromptCached: count(r.PromptDetails.CachedTokens), uCompletionReasoning: count(r.CompletionDetails.ReasoningTokens),
		uPromptCacheHit: count(r.PromptCacheHit), uInputTokens: count(r.InputTokens), uOutputTokens: count(r.OutputTokens),
		uInputCached: count(r.InputDetails.CachedTokens), uOutputReasoning: count(r.OutputDetails.ReasoningTokens),
		uCacheRead: count(r.CacheRead), uCacheCreation: count(r.CacheCreation),
	}
}

type refGemini struct {
	Prompt     refCount `json:"promptTokenCount"`
	Candidates refCount `json:"candidatesTokenCount"`
	Cached     refCount `json:"cachedContentTokenCount"`
	Thoughts   refCount `json:"thoughtsTokenCount"`
	ToolPrompt refCount `json:"toolUsePromptTokenCount"`
}

func (r *refGemini) counts() wireGemini {
	return wireGemini{gPrompt: count(r.Prompt), gCandidates: count(r.Candidates), gCached: count(r.Cached),
		gThoughts: count(r.Thoughts), gToolPrompt: count(r.ToolPrompt)}
}

// checkDecode compares decode with encoding/json on data, as the vendors'
// rules call it (a null is not read).
func checkDecode(t *testing.T, data []byte) {
	t.Helper()
	var w wireUsage
	ok := decode(data, usageFields, w[:])
	var ru refUsage
	rok := !isNull(data) && json.Unmarshal(data, &ru) == nil
	if ok != rok || ok && w != ru.counts() {
		t.Fatalf("usage %q: decoded %v %+v; encoding/json %v %+v", data, ok, w, rok, ru.counts())
	}
	var g wireGemini
	ok = decode(data, geminiFields, g[:])
	var rg refGemini
	rok = !isNull(data) && json.Unmarshal(data, &rg) == nil
	if ok != rok || ok && g != rg.counts() {
		t.Fatalf("usageMetadata %q: decoded %v %+v; encoding/json %v %+v", data, ok, g, rok, rg.counts())
	}
}

// FuzzSSE feeds arbitrary streams, split anywhere, through the SSE reader
// and the vendors' rules: nothing may panic, and a split never changes the
// result.
func FuzzSSE(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.sse"))
	for _, name := range files {
		b, _ := os.ReadFile(name)
		f.Add(b, uint16(len(b)/3))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		cut := int(split) % (len(data) + 1)
		run := func(parts ...[]byte) Usage {
			var a accum
			s := &sse{p: newPicker(&a), atStart: true, model: &a.u.Model}
			for _, p := range parts {
				s.feed(p)
			}
			return a.u
		}
		whole, parts := run(data), run(data[:cut], data[cut:])
		if whole != parts {
			t.Fatalf("split at %d: %+v; whole: %+v", cut, parts, whole)
		}
	})
}
