package transport

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// checkStream runs p through utf8Stream split at every cut point and checks
// the verdict against utf8.Valid, and that a failure is reported no later
// than the byte that made the text invalid.
func checkStream(t *testing.T, p []byte) {
	t.Helper()
	want := utf8.Valid(p)
	for cut := 0; cut <= len(p); cut++ {
		var u utf8Stream
		bad := u.feed(p[:cut])
		if bad < 0 {
			if k := u.feed(p[cut:]); k >= 0 {
				bad = cut + k
			}
		}
		got := bad < 0 && u.complete()
		if got != want {
			t.Fatalf("%x cut at %d: stream says valid=%v, utf8.Valid=%v", p, cut, got, want)
		}
		if bad >= 0 {
			// Fail fast: no valid text starts with p[:bad+1].
			for _, tail := range [][]byte{nil, {0x80}, {0x80, 0x80}, {0x80, 0x80, 0x80}, {0xBF}, {0xBF, 0xBF}, {0xBF, 0xBF, 0xBF}, {0x90, 0x80, 0x80}, {0xA0, 0x80}} {
				if utf8.Valid(append(bytes.Clone(p[:bad+1]), tail...)) {
					t.Fatalf("%x: byte %d reported invalid but %x completes it", p, bad, tail)
				}
			}
		}
	}
}

func TestUTF8Stream(t *testing.T) {
	cases := [][]byte{
		[]byte("hello, world"),
		[]byte("κόσμε"),
		[]byte("𝄞 music and more ascii text to pass the fast path"),
		{0xff},
		{0xc0, 0xaf},             // overlong '/'
		{0xe0, 0x80, 0xaf},       // overlong
		{0xed, 0xa0, 0x80},       // surrogate
		{0xf4, 0x90, 0x80, 0x80}, // above U+10FFFF
		{0xf5, 0x80, 0x80, 0x80},
		{0xce, 0xba, 0xe1, 0xbd},               // truncated
		{0xe2, 0x82, 0x28},                     // bad continuation
		{0xef, 0xbf, 0xbf},                     // U+FFFF is valid
		{0xf4, 0x8f, 0xbf, 0xbf},               // U+10FFFF
		[]byte("abcdefgh\xe2\x82\xacabcdefgh"), // euro sign between fast-path runs
	}
	for _, c := range cases {
		checkStream(t, c)
	}
}

func TestMaskedUTF8(t *testing.T) {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	text := bytes.Repeat([]byte("añb€c𝄞"), 200) // crosses the 512-byte chunk
	for _, pos := range []int{0, 1, 2, 3} {
		masked := make([]byte, len(text))
		for i := range text {
			masked[i] = text[i] ^ key[(pos+i)&3]
		}
		var u utf8Stream
		if bad := maskedUTF8(&u, masked, key, pos); bad >= 0 || !u.complete() {
			t.Fatalf("pos %d: valid text reported bad at %d", pos, bad)
		}
		bad := append(bytes.Clone(text[:700]), 0xff)
		m2 := make([]byte, len(bad))
		for i := range bad {
			m2[i] = bad[i] ^ key[(pos+i)&3]
		}
		u = utf8Stream{}
		if k := maskedUTF8(&u, m2, key, pos); k != 700 {
			t.Fatalf("pos %d: bad byte reported at %d, want 700", pos, k)
		}
	}
}

func FuzzUTF8Stream(f *testing.F) {
	for _, s := range []string{"", "a", "κόσμε", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "abcdefgh\xc3\xa9"} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, p []byte, cut uint8) {
		c := int(cut)
		if c > len(p) {
			c = len(p)
		}
		var u utf8Stream
		bad := u.feed(p[:c])
		if bad < 0 {
			if k := u.feed(p[c:]); k >= 0 {
				bad = c + k
			}
		}
		if got := bad < 0 && u.complete(); got != utf8.Valid(p) {
			t.Fatalf("%x cut %d: stream valid=%v, utf8.Valid=%v", p, c, got, !got)
		}
	})
}
