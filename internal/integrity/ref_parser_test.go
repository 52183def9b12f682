package integrity

// Reference parsers built on encoding/json's Decoder: slower but obviously
// faithful to the standard library's tokenizer. The fuzz target
// FuzzParserAgreement checks that the hand-written scanner in scan.go gives
// the same verdicts.

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// tokUint reads a plain non-negative decimal integer no larger than MaxSafeInteger.
func tokUint(dec *json.Decoder) (uint64, error) {
	tok, err := dec.Token()
	if err != nil {
		return 0, err
	}
	n, ok := tok.(json.Number)
	if !ok {
		return 0, errors.New("want a number")
	}
	s := string(n)
	if s == "" || len(s) > 16 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("want a canonical integer")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("want an integer")
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > MaxSafeInteger {
		return 0, errors.New("integer out of range")
	}
	return v, nil
}

func parseSigRef(dec *json.Decoder, allowed int) (rawSig, error) {
	var s rawSig
	err := walkObject(dec, func(name string) error {
		var f int
		switch name {
		case "v":
			f = fV
		case "alg":
			f = fAlg
		case "kid":
			f = fKid
		case "seq":
			f = fSeq
		case "ts":
			f = fTS
		case "nonce":
			f = fNonce
		case "body":
			f = fBody
		case "mac":
			f = fMAC
		}
		if f == 0 || allowed&f == 0 {
			return errors.New("unknown sig member " + strconv.Quote(trunc(name)))
		}
		if s.have&f != 0 {
			return errors.New("duplicate sig member " + strconv.Quote(name))
		}
		s.have |= f
		var err error
		switch f {
		case fV:
			s.v, err = tokUint(dec)
		case fSeq:
			s.seq, err = tokUint(dec)
		case fTS:
			s.ts, err = tokUint(dec)
		case fAlg:
			s.alg, err = tokString(dec)
		case fKid:
			s.kid, err = tokString(dec)
		case fNonce:
			s.nonce, err = tokString(dec)
		case fBody:
			s.body, err = tokString(dec)
		case fMAC:
			s.mac, err = tokString(dec)
		}
		if err != nil {
			return errors.New("sig." + name + ": " + err.Error())
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	if s.have != allowed {
		return s, errors.New("sig member missing")
	}
	if s.v != Version {
		return s, errors.New("unsupported version")
	}
	return s, nil
}

// parseOuter reads {"type":…,"sig":{…}}. It returns CodeUnsigned when the
// input is a JSON object without "sig", so plain unsigned messages are told
// apart from broken envelopes.
func parseOuterRef(raw []byte, allowed int) (typ string, s rawSig, err error) {
	if !utf8.Valid(raw) {
		return "", s, rejectErr(CodeBadEnvelope, "envelope", errors.New("invalid UTF-8"))
	}
	dec := newDecoder(raw)
	var haveType, haveSig bool
	var unknown string
	werr := walkObject(dec, func(name string) error {
		switch name {
		case "type":
			if haveType {
				return errors.New(`duplicate "type"`)
			}
			haveType = true
			var err error
			typ, err = tokString(dec)
			return err
		case "sig":
			if haveSig {
				return errors.New(`duplicate "sig"`)
			}
			haveSig = true
			var err error
			s, err = parseSigRef(dec, allowed)
			return err
		default:
			if unknown == "" {
				unknown = name
			}
			var skip json.RawMessage
			return dec.Decode(&skip)
		}
	})
	if werr == nil {
		werr = noTrailing(dec)
	}
	if werr != nil {
		if !haveSig && isObjectPrefix(raw) && json.Valid(raw) {
			return "", s, reject(CodeUnsigned, "no sig member")
		}
		return "", s, rejectErr(CodeBadEnvelope, "envelope", werr)
	}
	switch {
	case !haveSig:
		return "", s, reject(CodeUnsigned, "no sig member")
	case unknown != "":
		return "", s, reject(CodeBadEnvelope, "unknown envelope member "+strconv.Quote(trunc(unknown)))
	case !haveType:
		return "", s, reject(CodeBadEnvelope, `missing "type"`)
	case typ == "" || len(typ) > maxTypeLen:
		return "", s, reject(CodeBadEnvelope, "type empty or too long")
	case len(s.kid) > maxKidLen:
		return "", s, reject(CodeBadEnvelope, "kid too long")
	}
	return typ, s, nil
}

// CheckBody enforces what the inner message must be so that every later
// parser sees the same thing the signer meant: valid UTF-8 (the pipeline's
// UTF-8 check ran on the envelope, not on the decoded body), a single JSON
// object, no duplicate top-level member names, exactly one member named
// "type" (no case variants such as "Type", which encoding/json would match),
// and that member a string equal to typ.
func checkBodyRef(body []byte, typ string) error {
	if !utf8.Valid(body) {
		return reject(CodeBadEnvelope, "body is not valid UTF-8")
	}
	dec := newDecoder(body)
	var (
		innerType string
		haveType  bool
		seen      = make(map[string]struct{}, 8)
	)
	err := walkObject(dec, func(name string) error {
		if _, dup := seen[name]; dup {
			return errors.New("duplicate body member " + strconv.Quote(trunc(name)))
		}
		seen[name] = struct{}{}
		if name == "type" {
			haveType = true
			s, err := tokString(dec)
			if err != nil {
				return errors.New("body type: " + err.Error())
			}
			innerType = s
			return nil
		}
		if len(name) == 4 && strings.EqualFold(name, "type") {
			return errors.New("body member name is a case variant of \"type\"")
		}
		var skip json.RawMessage
		return dec.Decode(&skip)
	})
	if err == nil {
		err = noTrailing(dec)
	}
	if err != nil {
		return rejectErr(CodeBadEnvelope, "body", err)
	}
	if !haveType || innerType != typ {
		return reject(CodeTypeMismatch, "body type differs from envelope type")
	}
	return nil
}

// FuzzParserAgreement: the scanner and the encoding/json reference give the
// same verdict (error code, or identical values) on any input.
func FuzzParserAgreement(f *testing.F) {
	for _, s := range []string{
		`{"type":"a","sig":{"v":1,"alg":"HS256","kid":"k","seq":1,"ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA","body":"eyJ0eXBlIjoiYSJ9","mac":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}`,
		`{"type":"a\u0062","sig":{"v":1,"alg":"HS256","kid":"k\ud83d\ude00","seq":1,"ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA","body":"eyJ0eXBlIjoiYSJ9","mac":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}`,
		`{"type":"a","x":[1,{"y":"}"}],"sig":{}}`, `{"type":"a"}`, `{}`, ` {"a":1} `, `{"a":1}{}`, `{"t\ud800ype":1}`,
		`{"type":"a","sig":{"v":1.0}}`, `{"type":"a","sig":{"v":-1}}`, `{"type":"a","sig":{"v":01}}`,
	} {
		f.Add([]byte(s), []byte(`{"type":"a","b":[1,2,{"c":"\"}"}],"d":null}`))
	}
	f.Fuzz(func(t *testing.T, raw, body []byte) {
		const all = fV | fAlg | fKid | fSeq | fTS | fNonce | fBody | fMAC
		t1, r1, e1 := parseOuter(raw, all)
		t2, r2, e2 := parseOuterRef(raw, all)
		if CodeOf(e1) != CodeOf(e2) {
			t.Fatalf("outer: scanner %v, reference %v", e1, e2)
		}
		if e1 == nil && (t1 != t2 || r1 != r2) {
			t.Fatalf("outer values differ: %q %+v vs %q %+v", t1, r1, t2, r2)
		}
		for _, typ := range []string{"a", "type"} {
			if c1, c2 := CodeOf(CheckBody(body, typ)), CodeOf(checkBodyRef(body, typ)); c1 != c2 {
				t.Fatalf("body %q: scanner %q, reference %q", body, c1, c2)
			}
		}
	})
}
