package usage

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// TestDecodeCounts pins the decoder's reading of the cases a vendor or a
// gateway could send, beyond FuzzDecodeCounts' "as encoding/json does".
func TestDecodeCounts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		want int64 // prompt_tokens, when ok
		set  bool
	}{
		{`{"prompt_tokens":12}`, true, 12, true},
		{`{"prompt_tokens":12.0}`, true, 12, true},
		{`{"prompt_tokens":1e3}`, true, 1000, true},
		{`{"prompt_tokens":-3}`, true, -3, true},
		{`{"prompt_tokens":-1.5}`, false, 0, false},
		{`{"prompt_tokens":99999999999999999999}`, false, 0, false},
		{`{"prompt_tokens":012}`, false, 0, false},
		{`{"prompt_tokens":"12"}`, false, 0, false},
		{`{"prompt_tokens":null}`, true, 0, false},
		{`{"prompt_tokens":4,"prompt_tokens":null}`, true, 4, true},
		{`{"prompt_tokens":4,"prompt_tokens":5}`, true, 5, true},
		{`{"PROMPT_TOKENS":7}`, true, 7, true},
		{`{"\u0070rompt_tokens":8}`, true, 8, true},
		{"{\"prompt_to\u212aens\":9}", true, 9, true},   // Kelvin sign folds to k
		{"{\"prompt_token\u017f\":10}", true, 10, true}, // long s folds to s
		{`{"prompt_tokens":1,"x":[1,2,]}`, false, 0, false},
		{`{"prompt_tokens":1,"prompt_tokens_details":5}`, false, 0, false},
		{`{"prompt_tokens":1} x`, false, 0, false},
	} {
		var w wireUsage
		ok := decode([]byte(tc.in), usageFields, w[:])
		if ok != tc.ok || ok && w[uPromptTokens] != (count{n: tc.want, set: tc.set}) {
			t.Errorf("%s: ok %v, prompt_tokens %+v; want ok %v, %d set %v", tc.in, ok, w[uPromptTokens], tc.ok, tc.want, tc.set)
		}
	}
}

// Nesting is bounded as encoding/json bounds it (10000 levels). These are
// not fuzz seeds: inputs this long slow the fuzzer's mutations down.
func TestDecodeCounts_depth(t *testing.T) {
	for _, n := range []int{9999, 10000, 10001} {
		checkDecode(t, []byte(`{"prompt_tokens":1,"x":`+strings.Repeat("[", n-1)+strings.Repeat("]", n-1)+`}`))
		checkDecode(t, []byte(`{"prompt_tokens":1,"x":`+strings.Repeat(`{"a":`, n-1)+`0`+strings.Repeat("}", n-1)+`}`))
	}
	var w wireUsage
	if decode([]byte(`{"prompt_tokens":1,"x":`+strings.Repeat("[", maxDepth)+strings.Repeat("]", maxDepth)+`}`), usageFields, w[:]) {
		t.Error("nesting deeper than 10000 levels was read")
	}
}

// A small JSON answer is metered with no allocation but the Body's own,
// the model name once interned.
func TestMeter_smallJSONAllocations(t *testing.T) {
	body := readFixture(t, "openai_chat.json")
	m := New(Options{})
	r := bytes.NewReader(body)
	rc := io.NopCloser(r)
	buf := make([]byte, 32<<10)
	run := func() {
		r.Reset(body)
		mb, _ := m.Body(rc, "application/json", "")
		for {
			if _, err := mb.Read(buf); err != nil {
				break
			}
		}
		mb.Close()
		if u := mb.Usage(); u.Input != 1117 || u.CachedInput != 1024 || u.Reasoning != 12 || u.Model != "gpt-4o-2024-08-06" {
			t.Fatalf("got %+v", u)
		}
	}
	run()
	// The Body, and its pending copy: the fixture (931 bytes) is longer
	// than the Body's own array.
	if n := testing.AllocsPerRun(100, run); n > 2 {
		t.Errorf("%v allocations per small JSON answer; want at most 2", n)
	}
}

// The interned model names are bounded: past maxInterned names, or for a
// name longer than maxInternedLen, a name is allocated as before, and the
// table does not grow.
func TestInternModel_bounded(t *testing.T) {
	saved := interned.names.Load()
	t.Cleanup(func() { interned.names.Store(saved) })
	interned.names.Store(nil)
	long := strings.Repeat("m", maxInternedLen+1)
	if got := internModel([]byte(long)); got != long {
		t.Fatalf("internModel(%q) = %q", long, got)
	}
	if m := interned.names.Load(); m != nil {
		t.Fatalf("a name of %d bytes was interned", len(long))
	}
	for i := range maxInterned + 10 {
		name := fmt.Sprintf("model-%d", i)
		if got := internModel([]byte(name)); got != name {
			t.Fatalf("internModel(%q) = %q", name, got)
		}
	}
	m := *interned.names.Load()
	if len(m) != maxInterned {
		t.Fatalf("%d names interned; want %d", len(m), maxInterned)
	}
	if _, ok := m["model-0"]; !ok {
		t.Error("the first name is not interned")
	}
	if _, ok := m[fmt.Sprintf("model-%d", maxInterned)]; ok {
		t.Error("a name past the bound was interned")
	}
}
