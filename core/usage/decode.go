package usage

import (
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// The usage objects the picker keeps are read by a decoder of their own
// rather than encoding/json: it reads the few counts the vendors report,
// straight from the kept bytes, without reflection or allocation. It gives
// exactly what encoding/json's Unmarshal into a struct of count fields gives
// (FuzzDecodeCounts compares the two): the whole value must be valid JSON and
// an object; keys match a field's name as encoding/json matches them
// (escapes decoded, then case-insensitively, Unicode simple folding
// included); the last of duplicate keys wins, a null leaves a count as it
// was; a count that is not a number, or a nested object that is not an
// object or null, makes the whole value unread.

// count is a token count that may be absent from the JSON.
type count struct {
	n   int64
	set bool
}

// parseCount reads a JSON number (already checked against the grammar) as
// a token count: an integer in int64's range, or a float from 0 to 2^53 (a
// vendor writing 12.0 or 1e3), truncated.
func parseCount(b []byte) (count, bool) {
	d := b
	neg := len(d) > 0 && d[0] == '-'
	if neg {
		d = d[1:]
	}
	if len(d) > 0 && len(d) <= 18 {
		var n int64
		for _, c := range d {
			if c < '0' || c > '9' {
				return parseCountSlow(string(b))
			}
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return count{n: n, set: true}, true
	}
	return parseCountSlow(string(b))
}

func parseCountSlow(s string) (count, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f < 0 || f > 1<<53 {
			return count{}, false
		}
		n = int64(f)
	}
	return count{n: n, set: true}, true
}

// field is a member of an object the decoder reads: a count, or an object
// of counts (sub).
type field struct {
	name   string
	folded string // name as encoding/json folds it for a case-insensitive match
	idx    int    // index of the count it fills, when sub is nil
	sub    []field
}

func fields(fs ...field) []field {
	for i := range fs {
		var buf [maxFolded]byte
		k, _ := foldKey(buf[:0], []byte(fs[i].name), false)
		fs[i].folded = string(k)
	}
	return fs
}

// The counts of a usage object of the OpenAI, Responses and Anthropic shapes
// (../shared/VENDORS.md, "Usage fields"), so one decode reads any of them.
const (
	// OpenAI chat completions, completions, embeddings.
	// https://platform.openai.com/docs/api-reference/chat/object
	uPromptTokens        = iota // prompt_tokens
	uCompletionTokens           // completion_tokens
	uPromptCached               // prompt_tokens_details.cached_tokens
	uCompletionReasoning        // completion_tokens_details.reasoning_tokens
	// DeepSeek reports its cache hits here as well as, on newer versions,
	// in prompt_tokens_details.
	uPromptCacheHit // prompt_cache_hit_tokens

	// OpenAI Responses API and Anthropic Messages.
	// https://platform.openai.com/docs/api-reference/responses/object
	// https://docs.anthropic.com/en/api/messages
	uInputTokens     // input_tokens
	uOutputTokens    // output_tokens
	uInputCached     // input_tokens_details.cached_tokens
	uOutputReasoning // output_tokens_details.reasoning_tokens
	// Anthropic only: input_tokens excludes these two.
	uCacheRead     // cache_read_input_tokens
	uCacheCreation // cache_creation_input_tokens
	numUsage
)

// wireUsage is a decoded usage object, indexed by the u* constants.
type wireUsage [numUsage]count

func (w *wireUsage) anthropicLike() bool { return w[uCacheRead].set || w[uCacheCreation].set }

var usageFields = fields(
	field{name: "prompt_tokens", idx: uPromptTokens},
	field{name: "completion_tokens", idx: uCompletionTokens},
	field{name: "prompt_tokens_details", sub: fields(field{name: "cached_tokens", idx: uPromptCached})},
	field{name: "completion_tokens_details", sub: fields(field{name: "reasoning_tokens", idx: uCompletionReasoning})},
	field{name: "prompt_cache_hit_tokens", idx: uPromptCacheHit},
	field{name: "input_tokens", idx: uInputTokens},
	field{name: "output_tokens", idx: uOutputTokens},
	field{name: "input_tokens_details", sub: fields(field{name: "cached_tokens", idx: uInputCached})},
	field{name: "output_tokens_details", sub: fields(field{name: "reasoning_tokens", idx: uOutputReasoning})},
	field{name: "cache_read_input_tokens", idx: uCacheRead},
	field{name: "cache_creation_input_tokens", idx: uCacheCreation},
)

// The counts of Gemini's usageMetadata.
// https://ai.google.dev/api/generate-content#UsageMetadata
const (
	gPrompt     = iota // promptTokenCount
	gCandidates        // candidatesTokenCount
	gCached            // cachedContentTokenCount
	gThoughts          // thoughtsTokenCount
	gToolPrompt        // toolUsePromptTokenCount
	numGemini
)

// wireGemini is a decoded usageMetadata, indexed by the g* constants.
type wireGemini [numGemini]count

var geminiFields = fields(
	field{name: "promptTokenCount", idx: gPrompt},
	field{name: "candidatesTokenCount", idx: gCandidates},
	field{name: "cachedContentTokenCount", idx: gCached},
	field{name: "thoughtsTokenCount", idx: gThoughts},
	field{name: "toolUsePromptTokenCount", idx: gToolPrompt},
)

// decodeCounts reads the JSON object v into out, as described at the top of
// this file. It reports false, with out partly filled, when v is not read.
func decodeCounts(v []byte, fs []field, out []count) bool {
	s := scanner{b: v}
	s.ws()
	if s.peek() != '{' || !s.object(fs, out) {
		return false
	}
	s.ws()
	return s.i == len(s.b)
}

// maxDepth is encoding/json's bound on nesting.
const maxDepth = 10000

// scanner reads JSON from b, checking it against the grammar as it goes.
type scanner struct {
	b     []byte
	i     int
	depth int
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) ws() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

// open enters a container, as long as it is not nested too deep.
func (s *scanner) open() bool {
	s.depth++
	s.i++
	return s.depth <= maxDepth
}

// object reads the object at s.i into out.
func (s *scanner) object(fs []field, out []count) bool {
	if !s.open() {
		return false
	}
	s.ws()
	if s.peek() == '}' {
		s.i++
		s.depth--
		return true
	}
	for {
		f, ok := s.key(fs)
		if !ok {
			return false
		}
		if !s.member(f, out) {
			return false
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			s.depth--
			return true
		default:
			return false
		}
	}
}

// key reads a member's name and its colon, and returns the field it names,
// or nil.
func (s *scanner) key(fs []field) (*field, bool) {
	if s.peek() != '"' {
		return nil, false
	}
	start := s.i
	esc, ok := s.str()
	if !ok {
		return nil, false
	}
	raw := s.b[start+1 : s.i-1]
	s.ws()
	if s.peek() != ':' {
		return nil, false
	}
	s.i++
	s.ws()
	if !esc && isASCII(raw) {
		// Folding keeps the length: only names as long can match.
		for i := range fs {
			if len(raw) == len(fs[i].name) && (string(raw) == fs[i].name || upperEqual(raw, fs[i].folded)) {
				return &fs[i], true
			}
		}
		return nil, true
	}
	var buf [maxFolded]byte
	k, matchable := foldKey(buf[:0], raw, esc)
	if !matchable {
		return nil, true
	}
	for i := range fs {
		if string(k) == fs[i].folded {
			return &fs[i], true
		}
	}
	return nil, true
}

// member reads a member's value into the field f names, or skips it.
func (s *scanner) member(f *field, out []count) bool {
	if f == nil {
		return s.skip()
	}
	c := s.peek()
	if c == 'n' {
		return s.literal("null") // leaves the count or object as it was
	}
	if f.sub != nil {
		return c == '{' && s.object(f.sub, out)
	}
	start := s.i
	if !s.number() {
		return false
	}
	n, ok := parseCount(s.b[start:s.i])
	if ok {
		out[f.idx] = n
	}
	return ok
}

// skip reads any value, checking it, without recursion (the nesting is
// bounded by maxDepth alone).
func (s *scanner) skip() bool {
	var buf [32]byte
	open := buf[:0] // the containers open in this value, '{' or '['
	for {
		// A value starts at s.i.
		nested := false
		switch c := s.peek(); c {
		case '{', '[':
			if !s.open() {
				return false
			}
			s.ws()
			if s.peek() == c+2 { // '}' or ']': empty
				s.i++
				s.depth--
				break
			}
			open = append(open, c)
			if c == '{' && !s.name() {
				return false
			}
			nested = true
		case '"':
			if _, ok := s.str(); !ok {
				return false
			}
		case 't':
			if !s.literal("true") {
				return false
			}
		case 'f':
			if !s.literal("false") {
				return false
			}
		case 'n':
			if !s.literal("null") {
				return false
			}
		default:
			if !s.number() {
				return false
			}
		}
		if nested {
			continue
		}
		// After a value: close the containers that end here, then on to
		// the next value.
		for {
			if len(open) == 0 {
				return true
			}
			s.ws()
			top := open[len(open)-1]
			c := s.peek()
			if c == top+2 {
				s.i++
				s.depth--
				open = open[:len(open)-1]
				continue
			}
			if c != ',' {
				return false
			}
			s.i++
			s.ws()
			if top == '{' && !s.name() {
				return false
			}
			break
		}
	}
}

// name reads a member name that nothing reads, and its colon.
func (s *scanner) name() bool {
	if s.peek() != '"' {
		return false
	}
	if _, ok := s.str(); !ok {
		return false
	}
	s.ws()
	if s.peek() != ':' {
		return false
	}
	s.i++
	s.ws()
	return true
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number reads a number as JSON writes them:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	s.i = i
	return true
}

// str reads a string, checking its escapes and that it holds no control
// character, and says whether it has escapes.
func (s *scanner) str() (esc, ok bool) {
	b := s.b
	for i := s.i + 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return esc, true
		case c == '\\':
			esc = true
			i++
			if i >= len(b) {
				return esc, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 || hex4(b[i+1:i+5]) < 0 {
					return esc, false
				}
				i += 4
			default:
				return esc, false
			}
		case c < ' ':
			return esc, false
		}
	}
	return esc, false
}

// hex4 returns the value of four hex digits, or -1.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// maxFolded bounds a folded key worth comparing: every field name is ASCII
// and shorter.
const maxFolded = 32

// foldKey appends the content of a valid JSON string (raw, its escapes
// undone if esc) folded as encoding/json folds names for its
// case-insensitive match: ASCII letters upper-cased, any other rune replaced
// by the smallest of its simple case folding orbit (so "ſ" matches "s" and
// the Kelvin sign "k"). matchable is false when the result cannot equal an
// ASCII field name: a rune that folds outside ASCII, or too long.
func foldKey(out, raw []byte, esc bool) (k []byte, matchable bool) {
	for i := 0; i < len(raw); {
		var r rune
		switch c := raw[i]; {
		case c == '\\' && esc:
			switch e := raw[i+1]; e {
			case 'u':
				r = hex4(raw[i+2 : i+6])
				i += 6
				if utf16.IsSurrogate(r) {
					// A pair decodes outside the BMP and a lone one
					// to U+FFFD: neither can match.
					return out, false
				}
			case 'b':
				r, i = '\b', i+2
			case 'f':
				r, i = '\f', i+2
			case 'n':
				r, i = '\n', i+2
			case 'r':
				r, i = '\r', i+2
			case 't':
				r, i = '\t', i+2
			default: // '"', '\\', '/'
				r, i = rune(e), i+2
			}
		case c < utf8.RuneSelf:
			r = rune(c)
			i++
		default:
			var n int
			r, n = utf8.DecodeRune(raw[i:])
			i += n
		}
		if r >= utf8.RuneSelf {
			r = foldRune(r)
		} else if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		}
		if r >= utf8.RuneSelf || len(out) == maxFolded {
			return out, false
		}
		out = append(out, byte(r))
	}
	return out, true
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// upperEqual reports whether the ASCII key k, its letters upper-cased,
// is folded.
func upperEqual(k []byte, folded string) bool {
	for i, c := range k {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != folded[i] {
			return false
		}
	}
	return true
}

// foldRune returns the smallest rune of r's simple case folding orbit, as
// encoding/json's fold.go does.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}
