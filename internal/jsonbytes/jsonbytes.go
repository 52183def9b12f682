package jsonbytes

import (
	"bytes"
	"unicode/utf8"
	"unsafe"
)

// Alias views b as a string without copying. Callers use the result only while b is
// unchanged and never keep it beyond that.
func Alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// Hex4 decodes the four hex digits of a \u escape at b[i:i+4]; false when they are
// missing or not hex.
func Hex4(b []byte, i int) (uint32, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r uint32
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | uint32(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | uint32(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | uint32(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// Unescape appends the unescaped content of a JSON string (without its quotes) to
// dst. It is strict, so that unchecked input cannot smuggle a different decoding
// past it: false for a malformed escape or a lone UTF-16 surrogate, with dst holding
// what was decoded up to that point. Content other than escapes is copied as is.
func Unescape(dst, src []byte) ([]byte, bool) {
	for len(src) > 0 {
		j := bytes.IndexByte(src, '\\')
		if j < 0 {
			return append(dst, src...), true
		}
		dst = append(dst, src[:j]...)
		src = src[j:]
		if len(src) < 2 {
			return dst, false
		}
		switch src[1] {
		case '"', '\\', '/':
			dst = append(dst, src[1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := Hex4(src, 2)
			if !ok {
				return dst, false
			}
			w := 6
			switch {
			case r >= 0xD800 && r < 0xDC00:
				r2, ok := Hex4(src, 8)
				if len(src) < 12 || src[6] != '\\' || src[7] != 'u' || !ok || r2 < 0xDC00 || r2 > 0xDFFF {
					return dst, false
				}
				r, w = 0x10000+(r-0xD800)<<10+(r2-0xDC00), 12
			case r >= 0xDC00 && r <= 0xDFFF:
				return dst, false
			}
			dst = utf8.AppendRune(dst, rune(r))
			src = src[w:]
			continue
		default:
			return dst, false
		}
		src = src[2:]
	}
	return dst, true
}
