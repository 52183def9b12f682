package room

import "strings"

// MaxChannelLen is the longest accepted channel name, namespace included.
const MaxChannelLen = 128

// parseChannel splits "ns:name" (or "name", namespace "") and checks the charset:
// namespace [A-Za-z0-9_.-], name [A-Za-z0-9_.-@/=+], total length ≤ 128, name
// non-empty. There is at most one ':' since neither part may contain one.
func parseChannel(ch string) (ns, name string, ok bool) {
	if len(ch) == 0 || len(ch) > MaxChannelLen {
		return "", "", false
	}
	if i := strings.IndexByte(ch, ':'); i >= 0 {
		ns, name = ch[:i], ch[i+1:]
		if !validNamespaceName(ns) {
			return "", "", false
		}
	} else {
		name = ch
	}
	if name == "" {
		return "", "", false
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return "", "", false
		}
	}
	return ns, name, true
}

func validNamespaceName(ns string) bool {
	if ns == "" || len(ns) > 64 {
		return false
	}
	for i := 0; i < len(ns); i++ {
		if !nsByte(ns[i]) {
			return false
		}
	}
	return true
}

func nsByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

func nameByte(c byte) bool {
	return nsByte(c) || c == '@' || c == '/' || c == '=' || c == '+'
}

// Pattern language for channel permissions (claim lists and nothing else):
//   - every character matches itself, except '*';
//   - '*' matches any run (possibly empty) of characters other than ':', so it never
//     crosses from the name into the namespace: "chat:*" matches every channel of
//     namespace chat, "chat:room.*" matches "chat:room.1", "*" matches only channels
//     of the default namespace "", and "*:*" matches every channel.
//
// Matching is the classic linear-backtrack wildcard algorithm: O(len(p)·len(s)) at
// worst, with both bounded (MaxChannelLen, maxPatternLen).
func matchPattern(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0 && s[mark] != ':':
			// Let the last star swallow one more character (never a ':').
			mark++
			si = mark
			pi = star + 1
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

const (
	maxPatternLen = 256
	maxPatterns   = 256 // a claim with more patterns is only read this far
)

// allowed reports whether the client's claims grant action ("sub" or "pub") on ch.
// Claims come from a verified token; the shape expected is
// {claim: {"sub": ["chat:*"], "pub": ["chat:lobby"]}}; anything else grants nothing.
func allowed(claims map[string]any, claim, action, ch string) bool {
	return eachPattern(claims, claim, action, func(p string) bool { return matchPattern(p, ch) })
}

// eachPattern calls fn with the claims' patterns for action (the first
// maxPatterns, those up to maxPatternLen) until fn returns true, and reports
// whether it did.
func eachPattern(claims map[string]any, claim, action string, fn func(pattern string) bool) bool {
	perms, ok := claims[claim].(map[string]any)
	if !ok {
		return false
	}
	switch list := perms[action].(type) {
	case []any:
		for i, v := range list {
			if i >= maxPatterns {
				return false
			}
			if p, ok := v.(string); ok && len(p) <= maxPatternLen && fn(p) {
				return true
			}
		}
	case []string:
		for i, p := range list {
			if i >= maxPatterns {
				return false
			}
			if len(p) <= maxPatternLen && fn(p) {
				return true
			}
		}
	case string:
		return len(list) <= maxPatternLen && fn(list)
	}
	return false
}

// Patterns returns the channel patterns the claims grant for action ("sub" or
// "pub"), read exactly as permission checks read them: the end-to-end key
// delivery (internal/state/encrypt.ClientKeys) hands out keys only for these.
func Patterns(claims map[string]any, claim, action string) []string {
	var out []string
	eachPattern(claims, claim, action, func(p string) bool { out = append(out, p); return false })
	return out
}

// MatchPattern reports whether permission pattern p matches s (the pattern
// language above).
func MatchPattern(p, s string) bool { return len(p) <= maxPatternLen && matchPattern(p, s) }
