package usage

import "bytes"

// slot names a JSON value the meter keeps from a record. Everything else in a
// body is skipped as it passes, so memory stays bounded however large the body.
type slot uint8

const (
	slotType          slot = iota // "type": Anthropic and Responses event type, Anthropic "message"
	slotModel                     // "model"
	slotUsage                     // "usage": OpenAI chat, completions, embeddings, Responses JSON, Anthropic message_delta and JSON
	slotUsageMeta                 // "usageMetadata": Gemini
	slotModelVersion              // "modelVersion": Gemini
	slotMessageModel              // "message.model": Anthropic message_start
	slotMessageUsage              // "message.usage": Anthropic message_start
	slotResponseModel             // "response.model": Responses API events
	slotResponseUsage             // "response.usage": Responses API response.completed/incomplete/failed
	slotGroqUsage                 // "x_groq.usage": Groq's streamed chunks
	numSlots
	slotNone slot = 255
)

// parent is an object one level under the record whose keys are also read.
type parent uint8

const (
	parentNone parent = iota
	parentMessage
	parentResponse
	parentGroq
)

// topKey maps a key of the record object to the slot it fills or the parent
// it opens.
func topKey(k []byte) (slot, parent) {
	switch string(k) {
	case "type":
		return slotType, parentNone
	case "model":
		return slotModel, parentNone
	case "usage":
		return slotUsage, parentNone
	case "usageMetadata":
		return slotUsageMeta, parentNone
	case "modelVersion":
		return slotModelVersion, parentNone
	case "message":
		return slotNone, parentMessage
	case "response":
		return slotNone, parentResponse
	case "x_groq":
		return slotNone, parentGroq
	}
	return slotNone, parentNone
}

func childKey(p parent, k []byte) slot {
	switch {
	case p == parentMessage && string(k) == "model":
		return slotMessageModel
	case p == parentMessage && string(k) == "usage":
		return slotMessageUsage
	case p == parentResponse && string(k) == "model":
		return slotResponseModel
	case p == parentResponse && string(k) == "usage":
		return slotResponseUsage
	case p == parentGroq && string(k) == "usage":
		return slotGroqUsage
	}
	return slotNone
}

// Limits of the picker. A kept value (a usage object, a model name) longer
// than maxValue is dropped.
const (
	maxValue = 16 << 10
	maxKey   = 16
)

type pstate uint8

const (
	psValue    pstate = iota // a value may start
	psKeyOrEnd               // just after '{': a key or '}'
	psKey                    // after ',' in an object: a key
	psColon                  // after a key: ':'
	psAfter                  // after a value: ',' or a closer
	psString                 // in a string
	psEscape                 // after '\' in a string
	psLiteral                // in a number, true, false or null
	psBroken                 // not JSON: ignore the rest
)

// picker reads JSON incrementally, a chunk at a time, and keeps only the
// values named by the slots. A record is the top-level object, or each object
// element of a top-level array (Gemini's streamed array without alt=sse), or
// each of several top-level values in a row (JSON lines). The recorder sees each
// record when its closing brace arrives. Nothing is buffered but the kept
// values: no event waits for the picker, which only reads copies.
//
// A picker lives inside its owner (a Body, a RequestModel) and keeps the
// values of a record in the owner's fixed-size arena while they fit, so a
// small body is read without allocating; a longer value moves to a buffer of
// its own, reused by the slot's later values.
type picker struct {
	st       pstate
	depth    int    // open containers
	objects  uint64 // bit d-1 set when the container at depth d (at most keyDepth) is an object
	skip     bool   // inside a container deeper than keyDepth
	skipStr  bool   // ... and in a string there
	skipEsc  bool   // ... just after a backslash
	rec      int    // depth of the record object (1, or 2 inside a top-level array)
	isKey    bool   // the string being read is an object key
	key      [maxKey]byte
	keyLen   int // -1: too long to be interesting
	next     slot
	opens    parent
	par      parent // the parent object open at depth rec+1
	cap      slot   // the slot being captured, or slotNone
	capDepth int
	capStart int // start of the capture in the current chunk
	vals     [numSlots][]byte
	have     [numSlots]bool
	store    [numSlots]storage // where each slot's buffer lives
	arena    []byte            // the owner's array for kept values
	used     int               // bytes of arena taken by this record's values
	recorder recorder
}

// recorder reads each record the picker completes.
type recorder interface{ record(*picker) }

// storage says where a slot's value buffer lives.
type storage uint8

const (
	inNone  storage = iota // no buffer yet
	inArena                // in the arena, for the current record only
	onHeap                 // a buffer of its own, kept for the slot's later values
)

// init readies a picker in place, with the owner's recorder and arena.
func (p *picker) init(rec recorder, arena []byte) {
	p.recorder, p.arena = rec, arena
	p.reset()
}

// reset makes the picker ready for a new document, keeping its buffers.
func (p *picker) reset() {
	p.st, p.depth, p.objects, p.rec = psValue, 0, 0, 0
	p.skip, p.skipStr, p.skipEsc = false, false, false
	p.next, p.opens, p.par, p.cap = slotNone, parentNone, parentNone, slotNone
	p.clearRecord()
}

func (p *picker) clearRecord() {
	for i := range p.have {
		p.have[i] = false
		p.dropArena(slot(i))
	}
	p.used = 0
}

// dropArena forgets a slot's value when it lives in the arena, which the
// next record reuses; a buffer of its own is kept, empty.
func (p *picker) dropArena(s slot) {
	if p.store[s] == inArena {
		p.vals[s], p.store[s] = nil, inNone
	} else {
		p.vals[s] = p.vals[s][:0]
	}
}

// startCapture gives the slot an empty buffer for its next value: its own
// if it has one, else the free end of the arena.
func (p *picker) startCapture(s slot) {
	switch {
	case p.store[s] == onHeap:
		p.vals[s] = p.vals[s][:0]
	case p.used < len(p.arena):
		p.vals[s], p.store[s] = p.arena[p.used:p.used:len(p.arena)], inArena
	default:
		p.vals[s], p.store[s] = nil, inNone
	}
}

// value returns a kept value of the current record, or nil.
func (p *picker) value(s slot) []byte {
	if !p.have[s] {
		return nil
	}
	return p.vals[s]
}

// feed reads the next chunk of the document.
func (p *picker) feed(b []byte) {
	if p.cap != slotNone {
		p.capStart = 0
	}
	for i := 0; i < len(b); i++ {
		if p.skip {
			i = p.skipping(b, i)
			continue
		}
		c := b[i]
		switch p.st {
		case psString:
			i = p.inString(b, i)
			continue
		case psEscape:
			p.st = psString
			if p.isKey && p.keyLen >= 0 {
				p.keyLen = -1 // escaped keys are never ones the meter reads
			}
			continue
		case psLiteral:
			if !isDelim(c) {
				continue
			}
			p.st = psAfter
			p.valueEnd(b, i)
		case psBroken:
			return
		}
		if isSpace(c) {
			continue
		}
		switch p.st {
		case psValue:
			p.startValue(b, i, c)
		case psKeyOrEnd, psKey:
			switch {
			case c == '"':
				p.st, p.isKey, p.keyLen = psString, true, 0
				if !p.keyWanted() {
					p.keyLen = -1
				}
			case c == '}' && p.st == psKeyOrEnd:
				p.close(b, i)
			default:
				p.st = psBroken
			}
		case psColon:
			if c != ':' {
				p.st = psBroken
				continue
			}
			p.st = psValue
		case psAfter:
			p.after(b, i, c)
		}
	}
	if p.cap != slotNone && p.st != psBroken {
		p.keep(b[p.capStart:])
	}
}

// keyDepth is the deepest container whose structure matters: the record's
// own object, or the parent object it opened (one level down). Anything
// deeper is skipped by skipping.
func (p *picker) keyDepth() int {
	d := max(p.rec, 1)
	if p.par != parentNone {
		d++
	}
	return d
}

// skipping consumes bytes of a container deeper than keyDepth, counting
// brackets outside strings, and returns the index of the last byte consumed.
// It is the picker's hot loop: most of a body (choices, candidates, content,
// embeddings) is skipped here.
func (p *picker) skipping(b []byte, i int) int {
	for ; i < len(b); i++ {
		if p.skipEsc {
			p.skipEsc = false
			continue
		}
		if p.skipStr {
			n, c := stringRun(b[i:])
			switch c {
			case '\\':
				p.skipEsc = true
			case '"':
				p.skipStr = false
			default:
				return len(b) - 1
			}
			i += n
			continue
		}
		switch b[i] {
		case '"':
			p.skipStr = true
		case '{', '[':
			p.depth++
		case '}', ']':
			p.depth--
			if p.depth == p.keyDepth() {
				p.skip = false
				p.st = psAfter
				p.valueEnd(b, i+1)
				return i
			}
		}
	}
	return len(b) - 1
}

// stringRun returns the length of the plain string content at the start of
// b and the byte that ends it: '"', '\\', or 0 when b ends first. It finds
// them with IndexByte, the fast path for long strings (message content).
func stringRun(b []byte) (int, byte) {
	q := bytes.IndexByte(b, '"')
	in := b
	if q >= 0 {
		in = b[:q]
	}
	if bs := bytes.IndexByte(in, '\\'); bs >= 0 {
		return bs, '\\'
	}
	if q < 0 {
		return len(b), 0
	}
	return q, '"'
}

// inString consumes string bytes from b[i:] and returns the index of the last
// byte consumed. Content between quotes is skipped with IndexByte.
func (p *picker) inString(b []byte, i int) int {
	n, c := stringRun(b[i:])
	p.keyBytes(b[i : i+n])
	switch c {
	case '\\':
		p.st = psEscape
		return i + n
	case 0:
		return len(b) - 1
	}
	end := i + n
	if p.isKey {
		p.isKey = false
		p.st = psColon
		p.keyDone()
		return end
	}
	p.st = psAfter
	p.valueEnd(b, end+1)
	return end
}

func (p *picker) keyBytes(b []byte) {
	if !p.isKey || p.keyLen < 0 {
		return
	}
	if p.keyLen+len(b) > maxKey {
		p.keyLen = -1
		return
	}
	p.keyLen += copy(p.key[p.keyLen:], b)
}

// keyWanted reports whether keys of the object at the current depth can name
// a slot: the record's own keys, and those of a parent it opened.
func (p *picker) keyWanted() bool {
	return p.depth == p.rec || (p.depth == p.rec+1 && p.par != parentNone)
}

func (p *picker) keyDone() {
	p.next, p.opens = slotNone, parentNone
	if p.keyLen < 0 {
		return
	}
	k := p.key[:p.keyLen]
	if p.depth == p.rec {
		p.next, p.opens = topKey(k)
	} else {
		p.next = childKey(p.par, k)
	}
}

func (p *picker) startValue(b []byte, i int, c byte) {
	if p.next != slotNone && p.cap == slotNone {
		p.cap, p.capDepth, p.capStart = p.next, p.depth, i
		p.startCapture(p.cap)
	}
	p.next = slotNone
	opens := p.opens
	p.opens = parentNone
	switch c {
	case '{', '[':
		p.depth++
		if c == '{' {
			switch {
			case p.depth == 1:
				p.rec = 1
			case p.depth == 2 && p.rec == 0:
				p.rec = 2 // an object element of a top-level array
			case p.depth == p.rec+1:
				p.par = opens
			}
		}
		if p.depth > p.keyDepth() {
			// Nothing under here is kept by key: skip to its end,
			// capturing it whole if it is a kept value.
			p.skip = true
			return
		}
		if c == '{' {
			p.objects |= 1 << (p.depth - 1)
			p.st = psKeyOrEnd
			if p.depth == p.rec {
				p.clearRecordKeepCapture()
			}
		} else {
			p.objects &^= 1 << (p.depth - 1)
			p.st = psValue
		}
	case '"':
		p.st, p.isKey = psString, false
	case ']':
		// An empty array: "[" was read as "a value may start".
		if p.depth == 0 {
			p.st = psBroken
			return
		}
		p.after(b, i, c)
	default:
		p.st = psLiteral
	}
}

func (p *picker) clearRecordKeepCapture() {
	for s := range p.have {
		if slot(s) != p.cap {
			p.have[s] = false
			// used is kept, unlike clearRecord: the capture under
			// way may be in the arena.
			p.dropArena(slot(s))
		}
	}
}

func (p *picker) after(b []byte, i int, c byte) {
	switch {
	case c == ',' && p.depth > 0:
		if p.objects&(1<<(p.depth-1)) != 0 {
			p.st = psKey
		} else {
			p.st = psValue
		}
	case (c == '}' || c == ']') && p.depth > 0:
		isObj := p.objects&(1<<(p.depth-1)) != 0
		if isObj != (c == '}') {
			p.st = psBroken
			return
		}
		p.close(b, i)
	case p.depth == 0 && c != ',' && c != ':' && c != '}' && c != ']':
		// Another top-level value follows (JSON lines).
		p.rec = 0
		p.startValue(b, i, c)
	default:
		p.st = psBroken
	}
}

// close ends the container at the current depth with the closer at b[i].
func (p *picker) close(b []byte, i int) {
	closedRecord := p.depth == p.rec && p.objects&(1<<(p.depth-1)) != 0
	if p.depth == p.rec+1 {
		p.par = parentNone
	}
	p.depth--
	p.st = psAfter
	p.valueEnd(b, i+1)
	if closedRecord {
		if p.recorder != nil {
			p.recorder.record(p)
		}
		p.clearRecord()
	}
	if p.depth == 0 && p.rec == 1 {
		p.rec = 0
	}
}

// valueEnd is called when a value ends just before b[end]; it completes a
// capture that started at this depth.
func (p *picker) valueEnd(b []byte, end int) {
	if p.cap == slotNone || p.depth != p.capDepth {
		return
	}
	p.keep(b[p.capStart:end])
	if s := p.cap; s != slotNone {
		p.have[s] = true
		if p.store[s] == inArena {
			p.used += len(p.vals[s])
		}
	}
	p.cap = slotNone
}

func (p *picker) keep(b []byte) {
	s := p.cap
	v := p.vals[s]
	if len(v)+len(b) > maxValue {
		// Too large to be a usage object or a model name: drop it and
		// keep reading.
		p.vals[s] = v[:0]
		p.have[s] = false
		p.cap = slotNone
		return
	}
	if len(v)+len(b) > cap(v) {
		p.store[s] = onHeap // append moves it to a buffer of its own
	}
	p.vals[s] = append(v, b...)
	p.capStart = 0
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isDelim(c byte) bool { return isSpace(c) || c == ',' || c == '}' || c == ']' }
