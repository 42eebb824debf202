package usage

import "bytes"

// sse reads a text/event-stream incrementally and hands the data of each
// event to a picker, without assembling lines or events: the field name is
// the only part of a line it keeps. Lines end in CRLF, LF or CR
// (https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream);
// Gemini separates its events with CRLF CRLF.
type sse struct {
	p         *picker
	atStart   bool // at the start of a line
	field     [8]byte
	fieldLen  int // -1: longer than any field read here
	inValue   bool
	skipSpace bool // the value's one optional leading space is next
	isData    bool
	isEvent   bool
	dataLines int
	event     [8]byte
	eventLen  int
	afterCR   bool
	errEvent  bool // an "event: error" was seen
	fed       bool // the picker was fed since its last reset
	// model is the model read so far; once known, events that carry
	// nothing else the meter reads are skipped unparsed.
	model *string
}

func (s *sse) feed(b []byte) {
	for len(b) > 0 {
		if s.afterCR {
			s.afterCR = false
			if b[0] == '\n' { // the LF of a CRLF
				b = b[1:]
				continue
			}
		}
		end := bytes.IndexByte(b, '\n')
		seg := b
		if end >= 0 {
			seg = b[:end]
		}
		if cr := bytes.IndexByte(seg, '\r'); cr >= 0 {
			end, seg = cr, seg[:cr]
			s.afterCR = true
		}
		// A whole one-line event in this chunk (the way vendors flush
		// them) can be judged before it is parsed.
		whole := end >= 0 && s.atStart && s.dataLines == 0 && blankNext(b[end:])
		s.segment(seg, whole)
		if end < 0 {
			return
		}
		s.lineEnd()
		b = b[end+1:]
	}
}

// blankNext reports whether the line terminator at t[0] is followed at once
// by an empty line, which ends the event.
func blankNext(t []byte) bool {
	if t[0] == '\r' && len(t) > 1 && t[1] == '\n' {
		t = t[2:]
	} else {
		t = t[1:]
	}
	return len(t) > 0 && (t[0] == '\n' || t[0] == '\r')
}

// worth reports whether the data of a whole event can change the usage: it
// names usage that is not null (usage, usageMetadata, x_groq's), an error, or
// a model while none is known. Most events of a stream (text deltas, and
// OpenAI's chunks with "usage":null) are not, and skip the parser. A false
// "yes" (the words inside some text) only costs a parse.
func (s *sse) worth(v []byte) bool {
	if *s.model == "" && bytes.Contains(v, quotedModel) {
		return true
	}
	// The common case first: an OpenAI-style chunk ends with "usage":null
	// (keys are unique, so it has no other usage, and an error event has
	// no choices chunk's shape).
	// (bytes.TrimRight with a cutset costs more than the rest of this
	// common case.)
	e := len(v)
	for e > 0 && (v[e-1] == ' ' || v[e-1] == '\t') {
		e--
	}
	if bytes.HasSuffix(v[:e], usageNullEnd) {
		return false
	}
	for rest := v; ; {
		i := bytes.Index(rest, quotedUsage)
		if i < 0 {
			break
		}
		rest = rest[i+len(quotedUsage):]
		if !bytes.HasPrefix(rest, usageNull) && !bytes.HasPrefix(rest, usageNullSpaced) {
			return true
		}
	}
	return bytes.Contains(v, quotedError)
}

var (
	quotedUsage     = []byte(`"usage`)
	usageNullEnd    = []byte(`"usage":null}`)
	usageNull       = []byte(`":null`)
	usageNullSpaced = []byte(`": null`)
	quotedError     = []byte(`"error"`)
	quotedModel     = []byte(`"model`)
)

// segment reads part of a line; whole says the line is a whole event.
func (s *sse) segment(b []byte, whole bool) {
	if len(b) == 0 {
		return
	}
	if s.atStart || !s.inValue {
		s.atStart = false
		i := bytes.IndexByte(b, ':')
		name := b
		if i >= 0 {
			name = b[:i]
		}
		if s.fieldLen >= 0 && s.fieldLen+len(name) <= len(s.field) {
			s.fieldLen += copy(s.field[s.fieldLen:], name)
		} else {
			s.fieldLen = -1
		}
		if i < 0 {
			return
		}
		s.startValue()
		b = b[i+1:]
		if whole && s.isData && !s.worth(b) {
			s.isData = false // the rest of the line is skipped
		}
	}
	if s.skipSpace && len(b) > 0 {
		s.skipSpace = false
		if b[0] == ' ' {
			b = b[1:]
		}
	}
	switch {
	case s.isData:
		s.p.feed(b)
		s.fed = true
	case s.isEvent:
		if s.eventLen >= 0 && s.eventLen+len(b) <= len(s.event) {
			s.eventLen += copy(s.event[s.eventLen:], b)
		} else {
			s.eventLen = -1
		}
	}
}

func (s *sse) startValue() {
	s.inValue, s.skipSpace = true, true
	name := s.field[:max(s.fieldLen, 0)]
	s.isData = string(name) == "data"
	s.isEvent = string(name) == "event"
	if s.isData {
		if s.dataLines > 0 {
			s.p.feed(newline) // the data lines of one event are joined by LF
			s.fed = true
		}
		s.dataLines++
	}
	if s.isEvent {
		s.eventLen = 0
	}
}

var newline = []byte{'\n'}

func (s *sse) lineEnd() {
	if s.atStart {
		s.dispatch() // a blank line ends the event
		return
	}
	s.atStart, s.inValue, s.skipSpace, s.isData, s.isEvent, s.fieldLen = true, false, false, false, false, 0
}

func (s *sse) dispatch() {
	if s.eventLen > 0 && string(s.event[:s.eventLen]) == "error" {
		s.errEvent = true
	}
	s.eventLen, s.dataLines = 0, 0
	// An event skipped unparsed left the picker as its reset did.
	if s.fed {
		s.fed = false
		s.p.reset()
	}
}
