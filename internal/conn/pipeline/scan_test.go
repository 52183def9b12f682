package pipeline

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/internal/jsonbytes"
)

var testLimits = scanLimits{depth: DefaultMaxDepth, keys: DefaultMaxKeys, array: DefaultMaxArray, str: DefaultMaxString, num: DefaultMaxNumber}

func scanOne(t testing.TB, lim scanLimits, in string) (scanResult, scanFail, int) {
	t.Helper()
	s := newScanner(lim)
	return s.scan([]byte(in))
}

func TestScanValidity(t *testing.T) {
	cases := []struct {
		in   string
		want scanFail
	}{
		{`{"type":"ping"}`, scanOK},
		{` {"type" : "ping" , "id" : 1 } `, scanOK},
		{`{}`, scanOK},
		{`[]`, scanOK},
		{`"x"`, scanOK},
		{`-0.5e+10`, scanOK},
		{`0`, scanOK},
		{`[1,[2,{"a":[true,false,null]}],"\u00e9\ud83d\ude00\n\"\\\/"]`, scanOK},
		{``, failSyntax},
		{`   `, failSyntax},
		{`{`, failSyntax},
		{`{"a"}`, failSyntax},
		{`{"a":}`, failSyntax},
		{`{"a":1,}`, failSyntax},
		{`[1,]`, failSyntax},
		{`[1 2]`, failSyntax},
		{`{"a":1}x`, failSyntax},
		{`{"a":1}{}`, failSyntax},
		{`{a:1}`, failSyntax},
		{`{'a':1}`, failSyntax},
		{`NaN`, failSyntax},
		{`[NaN]`, failSyntax},
		{`[Infinity]`, failSyntax},
		{`[01]`, failSyntax},
		{`[1.]`, failSyntax},
		{`[.5]`, failSyntax},
		{`[1e]`, failSyntax},
		{`[+1]`, failSyntax},
		{`[-]`, failSyntax},
		{`[tru]`, failSyntax},
		{`[nul]`, failSyntax},
		{`["a\x"]`, failSyntax},
		{`["a\u12"]`, failSyntax},
		{`["a\u12G4"]`, failSyntax},
		{"[\"a\tb\"]", failSyntax},
		{"[\"a\x00b\"]", failSyntax},
		{`["abc`, failSyntax},
		{`["abc\`, failSyntax},
		{"[\"\xff\"]", failUTF8},
		{"[\"abcdefghij\xc3\"]", failUTF8},
		{`["\ud800"]`, failSurrogate},
		{`["\udc00"]`, failSurrogate},
		{`["\ud800\u0041"]`, failSurrogate},
		{`["\ud800x"]`, failSurrogate},
		{`{"a":1,"a":2}`, failDuplicate},
		{`{"a":1,"\u0061":2}`, failDuplicate},
		{`{"a":{"a":1},"b":{"a":1}}`, scanOK},
		{`{"a":{"b":1,"b":1}}`, failDuplicate},
		{`[1e400]`, scanOK},
		{`[1e401]`, failNumber},
		{`[1e-999999999]`, failNumber},
		{`[1E00000000000000000000000000000000005]`, scanOK},
		{"[" + strings.Repeat("1", 65) + "]", failNumber},
		{"[" + strings.Repeat("1", 64) + "]", scanOK},
	}
	for _, c := range cases {
		_, got, _ := scanOne(t, testLimits, c.in)
		if got != c.want {
			t.Errorf("scan(%q) = %d, want %d", c.in, got, c.want)
		}
		// Everything the scanner accepts, encoding/json accepts.
		if got == scanOK && !json.Valid([]byte(c.in)) {
			t.Errorf("scan accepted %q, encoding/json does not", c.in)
		}
		if got == failSyntax && json.Valid([]byte(c.in)) {
			t.Errorf("scan: syntax error for %q, encoding/json accepts it", c.in)
		}
	}
}

func TestScanLimits(t *testing.T) {
	lim := scanLimits{depth: 3, keys: 3, array: 3, str: 5, num: 5}
	cases := []struct {
		in   string
		want scanFail
	}{
		{`[[[]]]`, scanOK},
		{`[[[[]]]]`, failDepth},
		{`{"a":{"b":{"c":{}}}}`, failDepth},
		{`{"a":1,"b":2,"c":3}`, scanOK},
		{`{"a":1,"b":2,"c":3,"d":4}`, failKeys},
		{`[1,2,3]`, scanOK},
		{`[1,2,3,4]`, failArray},
		{`[[],[],[],[]]`, failArray},
		{`["abcde"]`, scanOK},
		{`["abcdef"]`, failString},
		{`["\u00e9\u00e9x"]`, scanOK}, // 5 bytes unescaped, 13 raw
		{`["\u00e9\u00e9\u00e9"]`, failString},
		{`{"abcdef":1}`, failString},
		{`[12345]`, scanOK},
		{`[123456]`, failNumber},
	}
	for _, c := range cases {
		_, got, _ := scanOne(t, lim, c.in)
		if got != c.want {
			t.Errorf("scan(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestScanDeepNesting(t *testing.T) {
	for _, in := range []string{strings.Repeat("[", 20000), strings.Repeat("[", 10000) + strings.Repeat("]", 10000), `{"type":"x","a":` + strings.Repeat(`{"a":`, 10000)} {
		_, f, off := scanOne(t, testLimits, in)
		if f != failDepth {
			t.Fatalf("got %d, want failDepth", f)
		}
		// Refused at the first frame past the limit: the rest is never read.
		if off > 200 {
			t.Errorf("refused at offset %d, want within the first %d frames", off, DefaultMaxDepth+1)
		}
	}
}

func TestScanDuplicatesManyKeys(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < 100; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k`)
		b.WriteString(strings.Repeat("x", i))
		b.WriteString(`":1`)
	}
	ok := b.String() + "}"
	if _, f, _ := scanOne(t, testLimits, ok); f != scanOK {
		t.Fatalf("100 distinct keys: %d", f)
	}
	// A duplicate far past the linear threshold, written with an escape.
	dup := b.String() + `,"\u006bxxxxx":2}`
	if _, f, _ := scanOne(t, testLimits, dup); f != failDuplicate {
		t.Fatalf("duplicate after 100 keys: got %d", f)
	}
	// Two sibling objects past the threshold with the same keys are fine, and the
	// scanner is reusable afterwards.
	s := newScanner(testLimits)
	two := "[" + ok + "," + ok + "]"
	for i := 0; i < 3; i++ {
		if _, f, _ := s.scan([]byte(two)); f != scanOK {
			t.Fatalf("siblings: %d", f)
		}
		s.release()
	}
}

func TestScanExtracts(t *testing.T) {
	res, f, _ := scanOne(t, testLimits, `{"a":{"type":"inner","id":9},"id" : {"x":[1,"}"]} ,"type":"ch\u0061t"}`)
	if f != scanOK {
		t.Fatal(f)
	}
	if !res.typFound || !res.typString || string(res.typ) != "chat" {
		t.Errorf("type = %q found=%v string=%v", res.typ, res.typFound, res.typString)
	}
	if string(res.id) != `{"x":[1,"}"]}` {
		t.Errorf("id = %q", res.id)
	}
	res, _, _ = scanOne(t, testLimits, `{"type":5,"id":"a\"b"}`)
	if !res.typFound || res.typString || string(res.id) != `"a\"b"` {
		t.Errorf("got %+v", res)
	}
	res, _, _ = scanOne(t, testLimits, `{"id":-12.5e3}`)
	if res.typFound || string(res.id) != `-12.5e3` {
		t.Errorf("got %+v", res)
	}
}

// TestScanMembers: only top-level members count; a "sig" in text or nested in a
// payload is content (issue 13 item 5).
func TestScanMembers(t *testing.T) {
	for _, c := range []struct {
		in                          string
		sig, channel, payload, text string
	}{
		{in: `{"type":"chat","text":"sig"}`, text: `"sig"`},
		{in: `{"type":"publish","channel":"a:b","payload":{"sig":"x"}}`, channel: `"a:b"`, payload: `{"sig":"x"}`},
		{in: `{"type":"x","payload":[{"sig":1}], "sig" : {"v":1} }`, sig: `{"v":1}`, payload: `[{"sig":1}]`},
		{in: `{"type":"x","sig":null}`, sig: `null`},
		{in: `{"type":"x","Sig":1,"SIG":2}`},
	} {
		res, f, _ := scanOne(t, testLimits, c.in)
		if f != scanOK {
			t.Fatalf("%s: %v", c.in, f)
		}
		m := res.members
		if string(m.Sig) != c.sig || string(m.Channel) != c.channel || string(m.Payload) != c.payload || string(m.Text) != c.text {
			t.Errorf("%s: got sig=%q channel=%q payload=%q text=%q", c.in, m.Sig, m.Channel, m.Payload, m.Text)
		}
		if (m.Sig != nil) != (c.sig != "") {
			t.Errorf("%s: sig presence %v", c.in, m.Sig != nil)
		}
	}
}

func TestUnescapeMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{`"plain"`, `"\u00e9\ud83d\ude00\n\t\"\\\/\b\f\r"`, `"mixed \u0041 text"`} {
		var want string
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatal(err)
		}
		got, _ := jsonbytes.Unescape(nil, []byte(s[1:len(s)-1]))
		if !bytes.Equal(got, []byte(want)) {
			t.Errorf("unescape(%s) = %q, want %q", s, got, want)
		}
		_, dlen, _, f := scanString([]byte(s), 0)
		if f != scanOK || dlen != len(want) {
			t.Errorf("scanString(%s): dlen %d want %d (%d)", s, dlen, len(want), f)
		}
	}
}

func TestScanNoAllocs(t *testing.T) {
	s := newScanner(testLimits)
	msg := []byte(chatMessage(1024))
	many := []byte(`{"type":"x","o":{` + strings.TrimSuffix(strings.Repeat(`"k\u0031":1,`, 1), ",") + `}}`)
	s.scan(msg)
	s.scan(many)
	allocs := testing.AllocsPerRun(100, func() {
		if _, f, _ := s.scan(msg); f != scanOK {
			t.Fatal(f)
		}
		s.release()
	})
	if allocs != 0 {
		t.Errorf("scan allocates %.1f times per message", allocs)
	}
}
