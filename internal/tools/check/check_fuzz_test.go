package check

import (
	"strings"
	"testing"
)

// FuzzClassify: server messages are untrusted input.
func FuzzClassify(f *testing.F) {
	f.Add([]byte(`{"type":"error","code":"rate_limited"}`), []byte(`{"type":"ping"}`))
	f.Add([]byte(`{"error":null}`), []byte(nil))
	f.Add([]byte("\xff\xfe"), []byte("abcdefgh"))
	f.Add([]byte(strings.Repeat("a", 100)), []byte(strings.Repeat("a", 80)))
	f.Fuzz(func(t *testing.T, msg, sent []byte) {
		k := classify(msg, sent)
		if k < replyOther || k > replyRateLimited {
			t.Fatalf("kind %d", k)
		}
		o := &observer{}
		o.see("m", msg)
		_ = summarize([][]byte{msg, sent})
	})
}

// FuzzForge: --token is user input, maybe pasted from anywhere.
func FuzzForge(f *testing.F) {
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln")
	f.Add(b64json(map[string]any{"alg": "RS256"}) + "." + b64json(map[string]any{"sub": 1}) + ".")
	f.Add("a.b.c")
	f.Add("...")
	f.Fuzz(func(t *testing.T, tok string) {
		_ = subjectOf(tok)
		if out, err := flipSignature(tok); err == nil {
			if _, _, err := jwtParts(out); err != nil {
				t.Fatalf("flipped token does not parse: %v", err)
			}
		}
		if out, err := withAlg(tok, "none"); err == nil {
			if h, _, err := jwtParts(out + "x"); err != nil || h["alg"] != "none" {
				t.Fatalf("alg none: %v %v", h, err)
			}
		}
		_, _ = keyConfusion(tok, []byte("-----BEGIN PUBLIC KEY-----"))
	})
}
