package redact_test

import (
	"strings"
	"testing"

	"github.com/wsgate/wsgate/internal/observe/redact"
)

// FuzzString checks that a registered secret never survives String and that
// no JWT shape does either, whatever surrounds it.
func FuzzString(f *testing.F) {
	f.Add("prefix abcdefgh1234 suffix", "abcdefgh1234")
	f.Add("Bearer "+jwt+" and abcdefgh", "abcdefgh")
	f.Add("https://x/?q=abcdefgh#frag eyJ.eyJ.", "zzzzzzzzz")
	f.Add("aaaaaaaaaaaaaaaaaaaa", "aaaaaaaaa")
	f.Fuzz(func(t *testing.T, s, secret string) {
		// Keep the secret to characters the masks never produce, so a
		// mask next to leftover text cannot re-form it.
		secret = strings.Map(func(c rune) rune {
			if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
				return c
			}
			return -1
		}, secret)
		r := redact.New(redact.Options{MaxSecrets: 8})
		r.Add(secret)
		out := r.String(s)
		if len(secret) >= redact.MinSecretLen && strings.Contains(out, secret) {
			t.Fatalf("secret %q survives in %q", secret, out)
		}
		if r.Contains(out) {
			t.Fatalf("output still contains a secret or JWT: %q", out)
		}
		_ = r.URL(s)
		_ = redact.SensitiveKey(s)
	})
}
