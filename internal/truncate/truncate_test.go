package truncate

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestUTF8(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"hello", 10, "hello"}, {"hello", 5, "hello"}, {"hello", 3, "hel"}, {"hello", 0, ""}, {"hello", -1, ""},
		{"héllo", 2, "h"}, {"héllo", 3, "hé"}, {"😀x", 3, ""}, {"😀x", 4, "😀"}, {"", 3, ""},
	} {
		if got := UTF8(c.s, c.n); got != c.want {
			t.Errorf("UTF8(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}

func FuzzUTF8(f *testing.F) {
	f.Add("héllo wörld 😀", 7)
	f.Fuzz(func(t *testing.T, s string, n int) {
		got := UTF8(s, n)
		if len(got) > max(n, 0) && len(s) > n || !strings.HasPrefix(s, got) {
			t.Fatalf("UTF8(%q, %d) = %q", s, n, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("UTF8(%q, %d) = %q splits a rune", s, n, got)
		}
	})
}
