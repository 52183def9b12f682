package truncate_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wsgate/wsgate/internal/truncate"
)

func TestUTF8(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello", 3, "hel"},
		{"hello", 0, ""},
		{"hello", -1, ""},
		{"héllo", 2, "h"},               // é is 2 bytes: not split
		{"héllo", 3, "hé"},              // fits exactly
		{"a€b", 3, "a"},                 // € is 3 bytes
		{"a€b", 4, "a€"},                // fits exactly
		{"😀😀", 7, "😀"},                  // 4-byte runes
		{"\xff\xfe\xfd", 2, "\xff\xfe"}, // invalid bytes are kept, cut where they are
		{"a\x80\x80\x80\x80b", 4, "a\x80\x80\x80"},
	} {
		if got := truncate.UTF8(tc.s, tc.n); got != tc.want {
			t.Errorf("UTF8(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

func FuzzUTF8(f *testing.F) {
	f.Add("héllo wörld", 3)
	f.Add(strings.Repeat("😀", 40), 123)
	f.Add("\xff\x80\x80", 1)
	f.Fuzz(func(t *testing.T, s string, n int) {
		got := truncate.UTF8(s, n)
		if len(got) > max(n, 0) && got != s || !strings.HasPrefix(s, got) {
			t.Fatalf("UTF8(%q, %d) = %q: not a prefix within n", s, n, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("UTF8(%q, %d) = %q: cut a valid string invalid", s, n, got)
		}
		if len(s) > n && n >= utf8.UTFMax && len(got) <= n-utf8.UTFMax {
			t.Fatalf("UTF8(%q, %d) = %q: cut more than one rune", s, n, got)
		}
	})
}
