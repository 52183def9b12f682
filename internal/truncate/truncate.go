// Package truncate cuts strings to a byte budget without splitting a UTF-8
// sequence: close reasons (123 bytes on the wire), ban reasons, audit message
// bodies, schema paths and log fields all need the same cut, and a cut inside
// a rune would put an invalid byte where a client or a log reader chokes on it.
package truncate

import "unicode/utf8"

// UTF8 returns the longest prefix of s that is at most n bytes and does not end
// inside a multi-byte sequence (s itself when it fits). Invalid bytes already in
// s are kept as they are: the cut never makes a valid string invalid. n <= 0
// gives "".
func UTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	// s[n] starts the first rune left out, unless it continues one: a rune is
	// at most 4 bytes, so its first byte is at most 3 steps back. A longer run
	// of continuation bytes is invalid anyway and is cut where it is.
	for i := n; i >= max(n-utf8.UTFMax+1, 0); i-- {
		if i == 0 || utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return s[:n]
}
