package integrity

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner walks JSON that json.Valid already accepted, so it only has to
// find boundaries and decode strings, never to diagnose syntax. It avoids
// encoding/json's Decoder, whose token API costs ~150 allocations per
// envelope, and matches member names exactly (no case folding).
//
// The envelope grammar (readOuter, readSig, checkBody) is written once, on
// scanner. With dec set, the scanner's primitives (object, str, uint, skip)
// read with encoding/json's Decoder instead: that is the reference
// FuzzParserAgreement checks the hand-written primitives against.
type scanner struct {
	b   []byte
	i   int
	dec *json.Decoder // tests only; see above
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str decodes the string at s.i (which must start with '"'), like encoding/json
// does (invalid surrogates become U+FFFD).
func (s *scanner) str() (string, error) {
	if s.dec != nil {
		return tokString(s.dec)
	}
	if s.peek() != '"' {
		return "", errors.New("want a string")
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '"':
			v := string(s.b[start:s.i])
			s.i++
			return v, nil
		case '\\':
			return s.strSlow(start)
		}
		s.i++
	}
	return "", errors.New("unterminated string")
}

func (s *scanner) strSlow(start int) (string, error) {
	var sb strings.Builder
	sb.Write(s.b[start:s.i])
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return sb.String(), nil
		case c != '\\':
			sb.WriteByte(c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			break
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			sb.WriteByte(e)
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return "", errors.New("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					save := s.i
					s.i += 2
					if x, ok := s.hex4(); ok {
						r2 = x
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						sb.WriteRune(d)
						continue
					}
					s.i = save
				}
				r = utf8.RuneError
			}
			sb.WriteRune(r)
		default:
			return "", errors.New("bad escape")
		}
	}
	return "", errors.New("unterminated string")
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(s.b[s.i:s.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	s.i += 4
	return rune(v), true
}

// skip steps over one value (valid JSON assumed).
func (s *scanner) skip() error {
	if s.dec != nil {
		var v json.RawMessage
		return s.dec.Decode(&v)
	}
	switch s.peek() {
	case '"':
		s.i++
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '\\':
				s.i += 2
				continue
			case '"':
				s.i++
				return nil
			}
			s.i++
		}
		return errors.New("unterminated string")
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if err := s.skip(); err != nil {
					return err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return nil
				}
			}
			s.i++
		}
		return errors.New("unterminated container")
	case 0:
		return errors.New("unexpected end")
	}
	for s.i < len(s.b) { // number, true, false, null
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return nil
		}
		s.i++
	}
	return nil
}

// uint reads a plain non-negative decimal integer no larger than MaxSafeInteger.
func (s *scanner) uint() (uint64, error) {
	if s.dec != nil {
		return tokUint(s.dec)
	}
	c := s.peek()
	if c != '-' && (c < '0' || c > '9') {
		return 0, errors.New("want a number")
	}
	start := s.i
	if err := s.skip(); err != nil {
		return 0, err
	}
	t := s.b[start:s.i]
	if len(t) == 0 || len(t) > 16 || (len(t) > 1 && t[0] == '0') {
		return 0, errors.New("want a canonical integer")
	}
	var v uint64
	for _, d := range t {
		if d < '0' || d > '9' {
			return 0, errors.New("want an integer")
		}
		v = v*10 + uint64(d-'0')
	}
	if v > MaxSafeInteger {
		return 0, errors.New("integer out of range")
	}
	return v, nil
}

// object calls fn for each member name of the object at s.i; fn consumes the value.
func (s *scanner) object(fn func(name string) error) error {
	if s.dec != nil {
		return walkObject(s.dec, fn)
	}
	if s.peek() != '{' {
		return errors.New("not a JSON object")
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		name, err := s.str()
		if err != nil {
			return err
		}
		if s.peek() != ':' {
			return errors.New("want ':'")
		}
		s.i++
		s.ws()
		if err := fn(name); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errors.New("want ',' or '}'")
		}
	}
}

// readSig reads the "sig" object: each allowed member once, all of them, v = Version.
func readSig(s *scanner, allowed int) (rawSig, error) {
	var r rawSig
	err := s.object(func(name string) error {
		var (
			f   int
			num *uint64 // the member is an integer, read into num
			str *string // or a string, read into str
		)
		switch name {
		case "v":
			f, num = fV, &r.v
		case "alg":
			f, str = fAlg, &r.alg
		case "kid":
			f, str = fKid, &r.kid
		case "seq":
			f, num = fSeq, &r.seq
		case "ts":
			f, num = fTS, &r.ts
		case "nonce":
			f, str = fNonce, &r.nonce
		case "body":
			f, str = fBody, &r.body
		case "mac":
			f, str = fMAC, &r.mac
		}
		if f == 0 || allowed&f == 0 {
			return errors.New("unknown sig member " + strconv.Quote(trunc(name)))
		}
		if r.have&f != 0 {
			return errors.New("duplicate sig member " + strconv.Quote(name))
		}
		r.have |= f
		var err error
		if num != nil {
			*num, err = s.uint()
		} else {
			*str, err = s.str()
		}
		if err != nil {
			return errors.New("sig." + name + ": " + err.Error())
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	if r.have != allowed {
		return r, errors.New("sig member missing")
	}
	if r.v != Version {
		return r, errors.New("unsupported version")
	}
	return r, nil
}

// parseOuter reads {"type":…,"sig":{…}}. It returns CodeUnsigned when the
// input is a JSON object without "sig", so plain unsigned messages are told
// apart from broken envelopes.
func parseOuter(raw []byte, allowed int) (typ string, r rawSig, err error) {
	return readOuter(&scanner{b: raw}, raw, allowed)
}

// readOuter is parseOuter reading raw with s (a reader positioned at its start).
func readOuter(s *scanner, raw []byte, allowed int) (typ string, r rawSig, err error) {
	if !utf8.Valid(raw) {
		return "", r, rejectErr(CodeBadEnvelope, "envelope", errors.New("invalid UTF-8"))
	}
	if !json.Valid(raw) {
		return "", r, reject(CodeBadEnvelope, "envelope is not valid JSON")
	}
	var haveType, haveSig bool
	var unknown string
	werr := s.object(func(name string) error {
		switch name {
		case "type":
			if haveType {
				return errors.New(`duplicate "type"`)
			}
			haveType = true
			var err error
			typ, err = s.str()
			return err
		case "sig":
			if haveSig {
				return errors.New(`duplicate "sig"`)
			}
			haveSig = true
			var err error
			r, err = readSig(s, allowed)
			return err
		default:
			if unknown == "" {
				unknown = name
			}
			return s.skip()
		}
	})
	if werr != nil {
		if !haveSig && isObjectPrefix(raw) {
			return "", r, reject(CodeUnsigned, "no sig member")
		}
		return "", r, rejectErr(CodeBadEnvelope, "envelope", werr)
	}
	switch {
	case !haveSig:
		return "", r, reject(CodeUnsigned, "no sig member")
	case unknown != "":
		return "", r, reject(CodeBadEnvelope, "unknown envelope member "+strconv.Quote(trunc(unknown)))
	case !haveType:
		return "", r, reject(CodeBadEnvelope, `missing "type"`)
	case typ == "" || len(typ) > maxTypeLen:
		return "", r, reject(CodeBadEnvelope, "type empty or too long")
	case len(r.kid) > maxKidLen:
		return "", r, reject(CodeBadEnvelope, "kid too long")
	}
	return typ, r, nil
}

// CheckBody enforces what the inner message must be so that every later
// parser sees the same thing the signer meant: valid UTF-8 (the pipeline's
// UTF-8 check ran on the envelope, not on the decoded body), a single JSON
// object, no duplicate top-level member names, exactly one member named
// "type" (no case variants such as "Type", which encoding/json would match),
// and that member a string equal to typ.
func CheckBody(body []byte, typ string) error {
	return checkBody(&scanner{b: body}, body, typ)
}

// checkBody is CheckBody reading body with s (a reader positioned at its start).
func checkBody(s *scanner, body []byte, typ string) error {
	if !utf8.Valid(body) {
		return reject(CodeBadEnvelope, "body is not valid UTF-8")
	}
	if !json.Valid(body) {
		return reject(CodeBadEnvelope, "body is not valid JSON")
	}
	var (
		innerType string
		haveType  bool
		names     []string // small objects: linear scan beats a map
		seen      map[string]struct{}
	)
	err := s.object(func(name string) error {
		if seen != nil {
			if _, dup := seen[name]; dup {
				return errors.New("duplicate body member " + strconv.Quote(trunc(name)))
			}
			seen[name] = struct{}{}
		} else {
			for _, n := range names {
				if n == name {
					return errors.New("duplicate body member " + strconv.Quote(trunc(name)))
				}
			}
			names = append(names, name)
			if len(names) > 16 {
				seen = make(map[string]struct{}, 2*len(names))
				for _, n := range names {
					seen[n] = struct{}{}
				}
			}
		}
		if name == "type" {
			haveType = true
			v, err := s.str()
			if err != nil {
				return errors.New("body type: " + err.Error())
			}
			innerType = v
			return nil
		}
		if len(name) == 4 && strings.EqualFold(name, "type") {
			return errors.New("body member name is a case variant of \"type\"")
		}
		return s.skip()
	})
	if err != nil {
		return rejectErr(CodeBadEnvelope, "body", err)
	}
	if !haveType || innerType != typ {
		return reject(CodeTypeMismatch, "body type differs from envelope type")
	}
	return nil
}
