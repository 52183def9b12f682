package room

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzMatchPattern(f *testing.F) {
	for _, s := range [][2]string{{"chat:*", "chat:lobby"}, {"*", "a:b"}, {"*:*", "x:y"}, {"c*t:*y*", "chat:lobby"}, {"**", ""}, {"a*b*c", "aXbYbZc"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		// The regexp oracle works on runes; channel names and patterns that match
		// anything are ASCII, so invalid UTF-8 is out of the oracle's scope.
		if len(p) > 64 || len(s) > 128 || !utf8.ValidString(p) || !utf8.ValidString(s) {
			return
		}
		if got, want := matchPattern(p, s), refMatch(p, s); got != want {
			t.Fatalf("matchPattern(%q, %q) = %v, reference says %v", p, s, got, want)
		}
	})
}

func FuzzParseChannel(f *testing.F) {
	for _, s := range []string{"chat:lobby", "lobby", ":", "a:b:c", "x:" + strings.Repeat("z", 130), "a:\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ch string) {
		ns, name, ok := parseChannel(ch)
		if !ok {
			return
		}
		if len(ch) > MaxChannelLen || name == "" || strings.Count(ch, ":") > 1 {
			t.Fatalf("accepted %q", ch)
		}
		if (ns == "" && name != ch) || (ns != "" && ns+":"+name != ch) {
			t.Fatalf("split %q into %q %q", ch, ns, name)
		}
	})
}

func FuzzDecodePublishBody(f *testing.F) {
	for _, s := range []string{`{"channel":"chat:x","payload":1}`, `{"channel":"chat:x"}`, `{}`, `[`, `{"channel":"a","payload":{}} x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodePublishBody(bytes.NewReader(b))
		if err == nil && (req.Channel == "" || len(req.Payload) == 0) {
			t.Fatalf("accepted %q", b)
		}
	})
}
