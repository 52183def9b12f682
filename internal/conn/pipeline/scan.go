package pipeline

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"unicode/utf8"

	"github.com/wsgate/wsgate/internal/jsonbytes"
)

// scanFail says why the scanner stopped; scanOK means the input is acceptable.
type scanFail uint8

const (
	scanOK        scanFail = iota
	failSyntax             // not JSON (RFC 8259)
	failUTF8               // invalid UTF-8 inside a string
	failSurrogate          // \u escape of a lone UTF-16 surrogate
	failDepth              // nesting deeper than MaxDepth
	failKeys               // more than MaxKeys members in one object
	failArray              // more than MaxArray elements in one array
	failString             // a string or key longer than MaxString bytes (unescaped)
	failNumber             // a number literal longer than MaxNumber bytes or with a huge exponent
	failDuplicate          // the same key twice in one object
)

// maxExponent bounds |exponent| of a number literal. Schema checks turn numbers into
// big.Rat, and "1e1000000" alone costs tens of milliseconds there; no message needs a
// number beyond float64's range.
const maxExponent = 400

// linearKeys is how many keys an object may have before duplicate detection moves
// from a linear scan to the scanner's hash set.
const linearKeys = 16

// Pooled scanners keep their buffers; past these sizes they are dropped instead, so
// one huge message does not pin memory.
const (
	maxPooledKeys = 4096
	maxPooledSeen = 1024
)

type scanLimits struct {
	depth, keys, array, str, num int
}

type frame struct {
	obj     bool
	hashed  bool  // this object's keys are in scanner.seen
	n       int32 // members or elements so far
	keyBase int32 // index of this object's first key in scanner.keys
	serial  uint32
}

// closes reports whether c is the byte that closes f: '}' for an object, ']'
// for an array.
func (f *frame) closes(c byte) bool {
	return c == '}' && f.obj || c == ']' && !f.obj
}

// keyRef locates an unescaped key: in the message itself, or in the scanner's arena
// when the key had escapes.
type keyRef struct {
	start, end int32
	arena      bool
}

type seenKey struct {
	serial uint32
	hash   uint64
}

// scanResult is what the pipeline needs from the top-level object.
type scanResult struct {
	top       byte   // first byte of the top-level value
	typFound  bool   // a top-level "type" member exists
	typString bool   // ... and its value is a string
	typ       []byte // its unescaped content (into the message or the arena)
	id        []byte // raw JSON of the top-level "id" member, nil if absent
	members   Members
}

// Members are the raw JSON values of the top-level members that later stages act
// on, located by the structure scan so that no stage has to walk the message again
// or guess from a substring: a "sig" nested in a payload, or the text "sig", is not
// a top-level "sig". Member names are matched exactly after unescaping (`"s\u0069g"`
// is "sig"; "Sig" is not). Each slice points into the message and is nil when the
// member is absent.
type Members struct {
	Sig     []byte // "sig": present means the message is a signed envelope
	Channel []byte // "channel"
	Payload []byte // "payload"
	Text    []byte // "text"
	Since   []byte // "since"
	Token   []byte // "token"
	Limit   []byte // "limit"
	Name    []byte // "name"
}

// scanner checks a message against RFC 8259 and the structure limits in one pass,
// iteratively (an explicit stack bounded by the depth limit, so hostile nesting costs
// neither Go stack nor more than depth frames), without allocating once its buffers
// have grown. A scanner is used by one goroutine at a time (the pipeline pools them).
type scanner struct {
	lim    scanLimits
	stack  []frame
	keys   []keyRef
	arena  []byte
	seen   map[seenKey]struct{}
	seed   maphash.Seed
	serial uint32
	data   []byte

	pending  uint8   // the next value is a tracked top-level member (pendType, pendMember)
	pendDst  *[]byte // pendMember: where its raw value goes (a field of res)
	pendFrom int
	res      scanResult

	// verify is the Message handed to the Verifier (see process); it lives
	// here, in the pooled scanner, so that it is not allocated per message.
	verify Message
}

const (
	pendNone   = iota
	pendType   // "type": its string content goes to res.typ
	pendMember // another tracked member: its raw value goes to *pendDst
)

func newScanner(lim scanLimits) *scanner {
	return &scanner{
		lim:   lim,
		stack: make([]frame, 0, min(lim.depth, 64)),
		keys:  make([]keyRef, 0, 32),
		seed:  maphash.MakeSeed(),
	}
}

// release drops the references to the last message and oversized buffers, ready for
// the pool.
func (s *scanner) release() {
	s.data = nil
	s.res = scanResult{}
	s.verify = Message{}
	if cap(s.keys) > maxPooledKeys {
		s.keys = make([]keyRef, 0, 32)
	}
	if cap(s.arena) > 64<<10 {
		s.arena = nil
	}
	if len(s.seen) > maxPooledSeen {
		s.seen = nil
	} else if len(s.seen) > 0 {
		clear(s.seen)
	}
}

var wsTable = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// plainTable marks string bytes that need no attention: printable ASCII other than
// '"' and '\\'.
var plainTable = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scan checks data. On failure it returns the reason and the byte offset where it
// was found. The result's slices point into data or into the scanner's arena and are
// valid until the next scan.
func (s *scanner) scan(data []byte) (scanResult, scanFail, int) {
	s.data = data
	s.stack = s.stack[:0]
	s.keys = s.keys[:0]
	s.arena = s.arena[:0]
	s.pending, s.pendDst = pendNone, nil
	s.res = scanResult{}
	n := len(data)
	i := 0

	const (
		stValue = iota
		stOpen  // just inside '{' or '[': the first member or element, or the close
		stKey
		stAfter
	)
	st := stValue
	for {
		for i < n && wsTable[data[i]] {
			i++
		}
		switch st {
		case stOpen:
			top := &s.stack[len(s.stack)-1]
			if i < n && top.closes(data[i]) {
				i++
				s.pop(i)
				st = stAfter
				continue
			}
			if top.obj {
				st = stKey
				continue
			}
			top.n = 1
			if int(top.n) > s.lim.array {
				return s.res, failArray, i
			}
			st = stValue
			continue

		case stValue:
			if i >= n {
				return s.res, failSyntax, i
			}
			if s.pending != pendNone && len(s.stack) == 1 {
				s.pendFrom = i
			}
			if len(s.stack) == 0 {
				s.res.top = data[i]
			}
			switch c := data[i]; {
			case c == '{' || c == '[':
				if len(s.stack) >= s.lim.depth {
					return s.res, failDepth, i
				}
				s.serial++
				s.stack = append(s.stack, frame{obj: c == '{', keyBase: int32(len(s.keys)), serial: s.serial})
				i++
				st = stOpen
				continue
			case c == '"':
				end, dlen, esc, f := scanString(data, i)
				if f != scanOK {
					return s.res, f, end
				}
				if dlen > s.lim.str {
					return s.res, failString, i
				}
				if s.pending == pendType && len(s.stack) == 1 {
					s.res.typString = true
					s.res.typ = s.keyBytes(s.content(i, end, esc))
				}
				i = end
			case c == 't':
				if !bytes.HasPrefix(data[i:], litTrue) {
					return s.res, failSyntax, i
				}
				i += 4
			case c == 'f':
				if !bytes.HasPrefix(data[i:], litFalse) {
					return s.res, failSyntax, i
				}
				i += 5
			case c == 'n':
				if !bytes.HasPrefix(data[i:], litNull) {
					return s.res, failSyntax, i
				}
				i += 4
			case c == '-' || c >= '0' && c <= '9':
				end, f := scanNumber(data, i, s.lim.num)
				if f != scanOK {
					return s.res, f, end
				}
				i = end
			default:
				return s.res, failSyntax, i
			}
			s.valueDone(i)
			st = stAfter

		case stKey:
			if i >= n || data[i] != '"' {
				return s.res, failSyntax, i
			}
			end, dlen, esc, f := scanString(data, i)
			if f != scanOK {
				return s.res, f, end
			}
			if dlen > s.lim.str {
				return s.res, failString, i
			}
			top := &s.stack[len(s.stack)-1]
			top.n++
			if int(top.n) > s.lim.keys {
				return s.res, failKeys, i
			}
			k := s.content(i, end, esc)
			if s.addKey(top, k) {
				return s.res, failDuplicate, i
			}
			if len(s.stack) == 1 {
				s.track(s.keyBytes(k))
			}
			i = end
			for i < n && wsTable[data[i]] {
				i++
			}
			if i >= n || data[i] != ':' {
				return s.res, failSyntax, i
			}
			i++
			st = stValue

		case stAfter:
			if len(s.stack) == 0 {
				if i != n {
					return s.res, failSyntax, i
				}
				return s.res, scanOK, i
			}
			if i >= n {
				return s.res, failSyntax, i
			}
			top := &s.stack[len(s.stack)-1]
			switch c := data[i]; {
			case c == ',':
				i++
				if top.obj {
					st = stKey
				} else {
					top.n++
					if int(top.n) > s.lim.array {
						return s.res, failArray, i
					}
					st = stValue
				}
			case top.closes(c):
				i++
				s.pop(i)
			default:
				return s.res, failSyntax, i
			}
		}
	}
}

var (
	litTrue  = []byte("true")
	litFalse = []byte("false")
	litNull  = []byte("null")
)

// track marks the value of the top-level member named name for recording when
// it is one the pipeline tracks (the fields of scanResult and Members).
func (s *scanner) track(name []byte) {
	var dst *[]byte
	switch string(name) {
	case "type":
		s.pending = pendType
		s.res.typFound = true
		return
	case "id":
		dst = &s.res.id
	case "sig":
		dst = &s.res.members.Sig
	case "channel":
		dst = &s.res.members.Channel
	case "payload":
		dst = &s.res.members.Payload
	case "text":
		dst = &s.res.members.Text
	case "since":
		dst = &s.res.members.Since
	case "token":
		dst = &s.res.members.Token
	case "limit":
		dst = &s.res.members.Limit
	case "name":
		dst = &s.res.members.Name
	default:
		return
	}
	s.pending, s.pendDst = pendMember, dst
}

// valueDone records the end of a value for the top-level member being tracked.
func (s *scanner) valueDone(end int) {
	if s.pending != pendNone && len(s.stack) == 1 {
		if s.pending == pendMember {
			*s.pendDst = s.data[s.pendFrom:end:end]
		}
		s.pending, s.pendDst = pendNone, nil
	}
}

// content locates the unescaped content of the string data[i:end] (quotes
// included) that scanString accepted: in the message, or in the arena when it
// has escapes.
func (s *scanner) content(i, end int, esc bool) keyRef {
	if !esc {
		return keyRef{start: int32(i + 1), end: int32(end - 1)}
	}
	a := len(s.arena)
	s.arena, _ = jsonbytes.Unescape(s.arena, s.data[i+1:end-1]) // scanString accepted it
	return keyRef{start: int32(a), end: int32(len(s.arena)), arena: true}
}

func (s *scanner) pop(end int) {
	f := s.stack[len(s.stack)-1]
	if f.obj {
		s.keys = s.keys[:f.keyBase]
	}
	s.stack = s.stack[:len(s.stack)-1]
	s.valueDone(end)
}

func (s *scanner) keyBytes(k keyRef) []byte {
	if k.arena {
		return s.arena[k.start:k.end:k.end]
	}
	return s.data[k.start:k.end:k.end]
}

// addKey records k as a key of f and reports whether f already had it. Small objects
// are checked linearly; past linearKeys keys the object's keys go to a hash set keyed
// by (object serial, key hash), and a hash hit is confirmed by comparing bytes, so a
// collision can never reject a valid message.
func (s *scanner) addKey(f *frame, k keyRef) bool {
	kb := s.keyBytes(k)
	if !f.hashed {
		for _, o := range s.keys[f.keyBase:] {
			if bytes.Equal(s.keyBytes(o), kb) {
				return true
			}
		}
		s.keys = append(s.keys, k)
		if len(s.keys)-int(f.keyBase) > linearKeys {
			f.hashed = true
			if s.seen == nil {
				s.seen = make(map[seenKey]struct{}, 64)
			}
			for _, o := range s.keys[f.keyBase:] {
				s.seen[seenKey{f.serial, maphash.Bytes(s.seed, s.keyBytes(o))}] = struct{}{}
			}
		}
		return false
	}
	sk := seenKey{f.serial, maphash.Bytes(s.seed, kb)}
	if _, ok := s.seen[sk]; ok {
		for _, o := range s.keys[f.keyBase:] {
			if bytes.Equal(s.keyBytes(o), kb) {
				return true
			}
		}
	} else {
		s.seen[sk] = struct{}{}
	}
	s.keys = append(s.keys, k)
	return false
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special reports whether any of the 8 bytes in x is a control character, '"', '\\'
// or non-ASCII, i.e. needs the slow path.
func special(x uint64) bool {
	ctl := (x - 0x20*lsb) & ^x
	q := x ^ ('"' * lsb)
	bs := x ^ ('\\' * lsb)
	return (ctl|(q-lsb)&^q|(bs-lsb)&^bs|x)&msb != 0
}

// scanString checks the string starting at data[i] == '"'. It returns the index just
// past the closing quote, the unescaped length in bytes and whether it had escapes;
// on failure, the offset of the problem.
func scanString(data []byte, i int) (end, dlen int, esc bool, f scanFail) {
	n := len(data)
	saved := 0 // bytes that unescaping removes
	i++
	start := i
	for {
		for i+8 <= n && !special(binary.LittleEndian.Uint64(data[i:])) {
			i += 8
		}
		for i < n && plainTable[data[i]] {
			i++
		}
		if i >= n {
			return i, 0, esc, failSyntax
		}
		switch c := data[i]; {
		case c == '"':
			return i + 1, i - start - saved, esc, scanOK
		case c == '\\':
			esc = true
			if i+1 >= n {
				return i, 0, esc, failSyntax
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				saved++
				i += 2
			case 'u':
				r, ok := jsonbytes.Hex4(data, i+2)
				if !ok {
					return i, 0, esc, failSyntax
				}
				width := 6
				switch {
				case r >= 0xD800 && r < 0xDC00:
					if i+12 > n || data[i+6] != '\\' || data[i+7] != 'u' {
						return i, 0, esc, failSurrogate
					}
					r2, ok := jsonbytes.Hex4(data, i+8)
					if !ok {
						return i, 0, esc, failSyntax
					}
					if r2 < 0xDC00 || r2 > 0xDFFF {
						return i, 0, esc, failSurrogate
					}
					width = 12
					r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
				case r >= 0xDC00 && r <= 0xDFFF:
					return i, 0, esc, failSurrogate
				}
				saved += width - utf8.RuneLen(rune(r))
				i += width
			default:
				return i, 0, esc, failSyntax
			}
		case c < 0x20:
			return i, 0, esc, failSyntax
		default: // non-ASCII
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				return i, 0, esc, failUTF8
			}
			i += size
		}
	}
}

// scanNumber checks the number starting at data[i] against RFC 8259's grammar, the
// length limit and maxExponent, and returns the index just past it.
func scanNumber(data []byte, i, maxLen int) (int, scanFail) {
	n := len(data)
	start := i
	if data[i] == '-' {
		i++
	}
	switch {
	case i < n && data[i] == '0':
		i++
	case i < n && data[i] >= '1' && data[i] <= '9':
		for i < n && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		return i, failSyntax
	}
	if i < n && data[i] == '.' {
		i++
		d := i
		for i < n && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		if i == d {
			return i, failSyntax
		}
	}
	if i < n && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < n && (data[i] == '+' || data[i] == '-') {
			i++
		}
		d := i
		exp := 0
		for i < n && data[i] >= '0' && data[i] <= '9' {
			if exp <= maxExponent {
				exp = exp*10 + int(data[i]-'0')
			}
			i++
		}
		if i == d {
			return i, failSyntax
		}
		if exp > maxExponent {
			return start, failNumber
		}
	}
	if i-start > maxLen {
		return start, failNumber
	}
	return i, scanOK
}
