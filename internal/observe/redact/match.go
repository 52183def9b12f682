package redact

import "strings"

func isB64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// findJWT finds a JWT-looking substring at or after from: "eyJ" (a base64url
// encoded '{"'), then base64url segments joined by dots — at least
// header.payload. — so JWS (3 segments) and JWE (5) both match, and a JWT
// whose signature was cut off still does.
func findJWT(s string, from int) (start, end int, ok bool) {
	for from < len(s) {
		i := strings.Index(s[from:], "eyJ")
		if i < 0 {
			return 0, 0, false
		}
		start = from + i
		j := start + 3
		segs, segStart := 0, j
		for j <= len(s) {
			if j < len(s) && isB64URL(s[j]) {
				j++
				continue
			}
			if j > segStart {
				segs++
			}
			if j < len(s) && s[j] == '.' && j > segStart {
				j++
				segStart = j
				continue
			}
			break
		}
		// Two complete segments and the dot after the payload: "eyJx.y." or more.
		if segs >= 2 {
			end = j
			return start, end, true
		}
		from = start + 3
	}
	return 0, 0, false
}

func maskJWTs(s string) string { return maskAll(s, findJWT) }

// maskAll replaces with Mask every match that find reports in s: find returns
// the first match [start, end) that starts at or after from.
func maskAll(s string, find func(s string, from int) (start, end int, ok bool)) string {
	start, end, ok := find(s, 0)
	if !ok {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for ok {
		b.WriteString(s[last:start])
		b.WriteString(Mask)
		last = end
		start, end, ok = find(s, last)
	}
	b.WriteString(s[last:])
	return b.String()
}

// urlEnd reports whether c ends a URL embedded in free text.
func urlEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '"', '\'', '`', '<', '>':
		return true
	}
	return false
}

// maskURLQueries masks the query and fragment of every absolute URL
// ("scheme://...") in free text, e.g. the URL inside a *url.Error message.
func maskURLQueries(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	last, from := 0, 0
	changed := false
	for {
		i := strings.Index(s[from:], "://")
		if i < 0 {
			break
		}
		i += from
		end := i + 3
		for end < len(s) && !urlEnd(s[end]) {
			end++
		}
		q := strings.IndexAny(s[i+3:end], "?#")
		if q >= 0 {
			q += i + 3
			if s[q+1:end] != "REDACTED" {
				if !changed {
					b.Grow(len(s))
					changed = true
				}
				b.WriteString(s[last : q+1])
				b.WriteString("REDACTED")
				last = end
			}
		}
		from = end
	}
	if !changed {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// sensitiveWords mark a key as naming a credential when they occur anywhere
// in it, case-insensitively ("X-Auth-Token", "refreshToken", "session_cookie").
var sensitiveWords = [...]string{
	"token", "ticket", "secret", "password", "passwd", "authorization",
	"cookie", "api_key", "apikey", "api-key", "credential", "private", "bearer", "jwt",
}

// sensitiveParts mark a key only as a whole component, because as substrings
// they would hit innocent keys ("monkey", "author").
var sensitiveParts = [...]string{"key", "auth", "pwd", "pass", "sig", "signature"}

// descriptorParts, as the last component of a key, make it name the kind of a
// credential rather than carry one: "credential_source" is "bearer" or "ticket",
// "token_type" is "Bearer". Such values are kept (they explain an event); they
// still pass through the secret and JWT masks like any other value.
var descriptorParts = [...]string{"source", "kind", "type"}

// SensitiveKey reports whether an attribute, header or field named key is
// expected to carry a credential, so that its value must be masked whatever
// it is. A key whose last component is a descriptor ("credential_source",
// "tokenType") names a kind, not a value, and is not sensitive.
func SensitiveKey(key string) bool {
	if describes(key) {
		return false
	}
	for _, w := range sensitiveWords {
		if containsFold(key, w) {
			return true
		}
	}
	// Split on non-letters and on lower->upper case changes.
	start := 0
	for i := 0; i <= len(key); i++ {
		boundary := i == len(key) || !isLetter(key[i]) ||
			(i > start && isUpper(key[i]) && !isUpper(key[i-1]))
		if !boundary {
			continue
		}
		if i > start {
			part := key[start:i]
			for _, w := range sensitiveParts {
				if strings.EqualFold(part, w) {
					return true
				}
			}
		}
		if i < len(key) && isLetter(key[i]) {
			start = i
		} else {
			start = i + 1
		}
	}
	return false
}

// describes reports whether key's last component (split as SensitiveKey splits:
// on non-letters and lower-to-upper case changes) is one of descriptorParts.
func describes(key string) bool {
	end := len(key)
	start := end
	for start > 0 && isLetter(key[start-1]) {
		if start < end && isUpper(key[start]) && !isUpper(key[start-1]) {
			break // "tokenType": the component starts at the upper-case letter
		}
		start--
	}
	last := key[start:end]
	for _, w := range descriptorParts {
		if strings.EqualFold(last, w) {
			return true
		}
	}
	return false
}

// URLKey reports whether an attribute named key holds a URL or request
// target whose query string must be masked.
func URLKey(key string) bool {
	for _, w := range [...]string{"url", "uri", "path", "query", "target", "referer", "referrer", "location", "request", "endpoint", "href", "link"} {
		if containsFold(key, w) {
			return true
		}
	}
	return false
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isUpper(c byte) bool  { return c >= 'A' && c <= 'Z' }

// containsFold is an allocation-free ASCII case-insensitive strings.Contains
// for a lower-case needle.
func containsFold(s, lower string) bool {
	n := len(lower)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}
