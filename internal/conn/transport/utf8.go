package transport

import "encoding/binary"

// utf8Stream validates UTF-8 incrementally, byte by byte across any split
// (chunks of a frame, fragments of a message), and fails at the first byte
// that can no longer start or continue a valid sequence: overlong forms,
// surrogates and code points above U+10FFFF are refused at their second
// byte, as utf8.Valid refuses them. The zero value is at a code point
// boundary.
type utf8Stream struct {
	need   uint8 // continuation bytes still expected
	lo, hi byte  // allowed range of the next continuation byte
}

// complete reports whether the stream ends at a code point boundary.
func (u *utf8Stream) complete() bool { return u.need == 0 }

// feed validates p and returns the index of the first invalid byte, or -1.
func (u *utf8Stream) feed(p []byte) int {
	i := 0
	for i < len(p) {
		if u.need == 0 {
			// ASCII fast path, 8 bytes at a time.
			for i+8 <= len(p) && binary.LittleEndian.Uint64(p[i:])&0x8080808080808080 == 0 {
				i += 8
			}
			if i == len(p) {
				break
			}
			c := p[i]
			switch {
			case c < 0x80:
			case c >= 0xC2 && c <= 0xDF:
				u.need, u.lo, u.hi = 1, 0x80, 0xBF
			case c == 0xE0:
				u.need, u.lo, u.hi = 2, 0xA0, 0xBF
			case c == 0xED:
				u.need, u.lo, u.hi = 2, 0x80, 0x9F
			case c >= 0xE1 && c <= 0xEF:
				u.need, u.lo, u.hi = 2, 0x80, 0xBF
			case c == 0xF0:
				u.need, u.lo, u.hi = 3, 0x90, 0xBF
			case c >= 0xF1 && c <= 0xF3:
				u.need, u.lo, u.hi = 3, 0x80, 0xBF
			case c == 0xF4:
				u.need, u.lo, u.hi = 3, 0x80, 0x8F
			default:
				return i
			}
			i++
			continue
		}
		c := p[i]
		if c < u.lo || c > u.hi {
			return i
		}
		u.need--
		u.lo, u.hi = 0x80, 0xBF
		i++
	}
	return -1
}

// maskedUTF8 feeds the payload bytes p, masked with key starting at key
// offset pos, to u without modifying p (gws unmasks the same buffer later).
// It returns the index of the first invalid byte, or -1.
func maskedUTF8(u *utf8Stream, p []byte, key [4]byte, pos int) int {
	var buf [512]byte // a multiple of 4: every chunk starts at the same key offset
	done := 0
	for done < len(p) {
		n := copy(buf[:], p[done:])
		maskBytes(buf[:n], key, pos)
		if k := u.feed(buf[:n]); k >= 0 {
			return done + k
		}
		done += n
	}
	return -1
}
