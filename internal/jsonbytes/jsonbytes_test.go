package jsonbytes

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestUnescapeMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{`"plain"`, `""`, `"\u00e9\ud83d\ude00\n\t\"\\\/\b\f\r"`, `"mixed \u0041 text \u00E9"`} {
		var want string
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatal(err)
		}
		got, ok := Unescape(nil, []byte(s[1:len(s)-1]))
		if !ok || !bytes.Equal(got, []byte(want)) {
			t.Errorf("Unescape(%s) = %q, %v; want %q", s, got, ok, want)
		}
	}
}

func TestUnescapeRejects(t *testing.T) {
	for _, s := range []string{`\`, `\x`, `\u12`, `\u12G4`, `\ud800`, `\udc00`, `\ud800\u0041`, `\ud800x`, `\ud800\ud800`} {
		if got, ok := Unescape(nil, []byte(s)); ok {
			t.Errorf("Unescape(%s) = %q, accepted", s, got)
		}
	}
}

func TestHex4(t *testing.T) {
	for _, c := range []struct {
		in   string
		i    int
		want uint32
		ok   bool
	}{{"00e9", 0, 0xe9, true}, {"xFfFf", 1, 0xffff, true}, {"12", 0, 0, false}, {"12g4", 0, 0, false}, {"1234", 1, 0, false}} {
		if r, ok := Hex4([]byte(c.in), c.i); r != c.want || ok != c.ok {
			t.Errorf("Hex4(%q, %d) = %#x, %v", c.in, c.i, r, ok)
		}
	}
}

func TestAlias(t *testing.T) {
	if Alias(nil) != "" || Alias([]byte("ab")) != "ab" {
		t.Error("Alias")
	}
}

// FuzzUnescape: never panics, and whatever it accepts from content encoding/json
// also accepts, it decodes exactly as encoding/json does.
func FuzzUnescape(f *testing.F) {
	for _, s := range []string{"plain", `\u00e9\ud83d\ude00`, `\n\t\"\\\/\b\f\r`, `\ud800`, `\u12`, `\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		got, ok := Unescape([]byte("prefix"), src)
		if !bytes.HasPrefix(got, []byte("prefix")) {
			t.Fatalf("dst prefix lost: %q", got)
		}
		if !ok || !utf8.Valid(src) {
			return
		}
		quoted := append(append([]byte{'"'}, src...), '"')
		if !json.Valid(quoted) {
			return // a raw quote or control byte: the scanner's job, not Unescape's
		}
		var want string
		if err := json.Unmarshal(quoted, &want); err != nil {
			t.Fatal(err)
		}
		if string(got[len("prefix"):]) != want {
			t.Fatalf("Unescape(%q) = %q, encoding/json %q", src, got[len("prefix"):], want)
		}
	})
}
