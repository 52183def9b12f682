package integrity

// The reference for the hand-written JSON primitives of scan.go is
// encoding/json's Decoder: slower but obviously faithful to the standard
// library's tokenizer. The envelope grammar is written once (readOuter,
// checkBody); FuzzParserAgreement runs it on both and checks that they give
// the same verdicts.

import "testing"

// refScanner reads b with encoding/json's Decoder.
func refScanner(b []byte) *scanner { return &scanner{b: b, dec: newDecoder(b)} }

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
		t2, r2, e2 := readOuter(refScanner(raw), raw, all)
		if CodeOf(e1) != CodeOf(e2) {
			t.Fatalf("outer: scanner %v, reference %v", e1, e2)
		}
		if e1 == nil && (t1 != t2 || r1 != r2) {
			t.Fatalf("outer values differ: %q %+v vs %q %+v", t1, r1, t2, r2)
		}
		for _, typ := range []string{"a", "type"} {
			if c1, c2 := CodeOf(CheckBody(body, typ)), CodeOf(checkBody(refScanner(body), body, typ)); c1 != c2 {
				t.Fatalf("body %q: scanner %q, reference %q", body, c1, c2)
			}
		}
	})
}
