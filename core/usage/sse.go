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
}

func newSSE(p *picker) *sse { return &sse{p: p, atStart: true} }

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
		s.segment(seg)
		if end < 0 {
			return
		}
		s.lineEnd()
		b = b[end+1:]
	}
}

// segment reads part of a line.
func (s *sse) segment(b []byte) {
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
	s.p.reset()
}
