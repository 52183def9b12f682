package protocol

import "strings"

// IsTokenChar reports whether c is an RFC 7230 tchar, a character of header
// tokens and subprotocol names.
func IsTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// IsToken reports whether s is a non-empty RFC 7230 token of at most max
// bytes: it can go into a header (a credential, a subprotocol name) without
// smuggling anything.
func IsToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !IsTokenChar(s[i]) {
			return false
		}
	}
	return true
}
