package usage

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestAddIncludeUsage(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string // want "" means untouched
	}{
		{"added", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"}"}]}`,
			`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"}"}],"stream_options":{"include_usage":true}}`},
		{"whitespace and newline kept", "{\n  \"stream\": true\n}\n", "{\n  \"stream\": true\n,\"stream_options\":{\"include_usage\":true}}\n"},
		{"into existing options", `{"stream":true,"stream_options":{"x":1}}`, `{"stream":true,"stream_options":{"include_usage":true,"x":1}}`},
		{"into empty options", `{"stream_options": { },"stream":true}`, `{"stream_options": {"include_usage":true },"stream":true}`},
		{"null options", `{"stream":true,"stream_options":null}`, `{"stream":true,"stream_options":{"include_usage":true}}`},
		{"client said false", `{"stream":true,"stream_options":{"include_usage":false}}`, ""},
		{"client said true", `{"stream":true,"stream_options":{"include_usage":true}}`, ""},
		{"not streamed", `{"model":"m","messages":[]}`, ""},
		{"stream false", `{"stream":false}`, ""},
		{"stream as string", `{"stream":"true"}`, ""},
		{"options not an object", `{"stream":true,"stream_options":[1]}`, ""},
		{"not an object", `[{"stream":true}]`, ""},
		{"truncated", `{"stream":true,"messages":[`, ""},
		{"trailing data", `{"stream":true} {}`, ""},
		{"empty", ``, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := AddIncludeUsage([]byte(tc.in))
			if tc.want == "" {
				if ok {
					t.Fatalf("changed %s into %s; want it untouched", tc.in, got)
				}
				return
			}
			if !ok || string(got) != tc.want {
				t.Fatalf("got %s (%v); want %s", got, ok, tc.want)
			}
			var v struct {
				StreamOptions struct {
					IncludeUsage bool `json:"include_usage"`
				} `json:"stream_options"`
			}
			if err := json.Unmarshal(got, &v); err != nil || !v.StreamOptions.IncludeUsage {
				t.Fatalf("result %s is not JSON with include_usage true: %v", got, err)
			}
		})
	}
}

func TestRequestModel(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, "gpt-4o-mini"},
		{`{"messages":[{"model":"inner"}],"max_tokens":5,"model":"claude-sonnet-4-20250514"}`, "claude-sonnet-4-20250514"},
		{`{"input":"text","model":"text-embedding-3-small"}`, "text-embedding-3-small"},
		{`{"contents":[{"parts":[{"text":"hi"}]}]}`, ""},
		{`not json`, ""},
	} {
		for name, chunk := range map[string]func(io.Reader) io.Reader{"whole": func(r io.Reader) io.Reader { return r }, "one byte": iotest.OneByteReader} {
			r := NewRequestModel(io.NopCloser(chunk(strings.NewReader(tc.body))))
			out, err := io.ReadAll(r)
			if err != nil || string(out) != tc.body {
				t.Fatalf("%s: body changed: %q, %v", tc.body, out, err)
			}
			if got := r.Model(); got != tc.want {
				t.Errorf("%s (%s): model %q; want %q", tc.body, name, got, tc.want)
			}
		}
	}
}

func TestModelFromPath(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/v1beta/models/gemini-2.5-flash:generateContent", "gemini-2.5-flash"},
		{"/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent", "gemini-2.5-pro"},
		{"/openai/deployments/my-gpt4o/chat/completions", "my-gpt4o"},
		{"/v1/chat/completions", ""},
		{"/v1/models/gpt-4o", ""},
		{"/v1beta/models", ""},
	} {
		if got := ModelFromPath(tc.path); got != tc.want {
			t.Errorf("ModelFromPath(%q) = %q; want %q", tc.path, got, tc.want)
		}
	}
}
