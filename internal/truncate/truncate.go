// Package truncate shortens strings for places with a byte budget (close
// reasons, error replies, log fields) without cutting a UTF-8 sequence in two,
// so the result stays valid UTF-8 when the input was.
package truncate

import "unicode/utf8"

// UTF8 returns s cut to at most n bytes at a rune boundary.
func UTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n < 0 {
		n = 0
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
