package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/wsgate/wsgate/internal/jsonbytes"
)

var errDecode = errors.New("pipeline: decode: malformed input")

// decoder turns a message that the scanner has accepted into the value tree the
// schema validator walks (map[string]any, []any, string, json.Number, bool, nil: what
// encoding/json with UseNumber produces), in one pass and without reflection.
//
// Strings without escapes, keys and numbers alias the message bytes (unsafe.String)
// instead of being copied: the tree lives only for the schema check inside one
// Process call, during which the message is not modified, and nothing derived from
// it outlives the call (schema.Violation copies what it reports).
//
// It recurses, but only over input the scanner accepted, whose depth is bounded by
// Options.MaxDepth (at most maxDepthLimit). It still checks every index, so malformed
// input yields errDecode, never a panic.
type decoder struct {
	data []byte
	i    int
	buf  []byte
}

func decodeValue(data []byte) (any, error) {
	d := decoder{data: data}
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	d.ws()
	if d.i != len(d.data) {
		return nil, errDecode
	}
	return v, nil
}

func (d *decoder) ws() {
	for d.i < len(d.data) && wsTable[d.data[d.i]] {
		d.i++
	}
}

func (d *decoder) value() (any, error) {
	d.ws()
	if d.i >= len(d.data) {
		return nil, errDecode
	}
	switch c := d.data[d.i]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.str()
	case c == 't':
		d.i += 4
		return true, nil
	case c == 'f':
		d.i += 5
		return false, nil
	case c == 'n':
		d.i += 4
		return nil, nil
	default:
		start := d.i
		for d.i < len(d.data) && numTable[d.data[d.i]] {
			d.i++
		}
		if d.i == start {
			return nil, errDecode
		}
		return json.Number(jsonbytes.Alias(d.data[start:d.i])), nil
	}
}

var numTable = func() (t [256]bool) {
	for _, c := range []byte("0123456789+-.eE") {
		t[c] = true
	}
	return t
}()

func (d *decoder) object() (any, error) {
	d.i++ // '{'
	m := make(map[string]any, 8)
	d.ws()
	if d.i < len(d.data) && d.data[d.i] == '}' {
		d.i++
		return m, nil
	}
	for {
		d.ws()
		if d.i >= len(d.data) || d.data[d.i] != '"' {
			return nil, errDecode
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		d.ws()
		if d.i >= len(d.data) || d.data[d.i] != ':' {
			return nil, errDecode
		}
		d.i++
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		m[k] = v
		if more, err := d.next('}'); !more {
			return m, err
		}
	}
}

func (d *decoder) array() (any, error) {
	d.i++ // '['
	a := make([]any, 0, 4)
	d.ws()
	if d.i < len(d.data) && d.data[d.i] == ']' {
		d.i++
		return a, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		if more, err := d.next(']'); !more {
			return a, err
		}
	}
}

// next steps over what follows a member or element: ',' (more to come) or
// the container's closing byte (done). Anything else is an error.
func (d *decoder) next(closing byte) (more bool, err error) {
	d.ws()
	if d.i < len(d.data) {
		switch d.data[d.i] {
		case ',':
			d.i++
			return true, nil
		case closing:
			d.i++
			return false, nil
		}
	}
	return false, errDecode
}

// str decodes the string at d.i (on '"'), which the scanner has validated.
func (d *decoder) str() (string, error) {
	start := d.i + 1
	j := start
	esc := false
	for {
		q := bytes.IndexByte(d.data[j:], '"')
		if q < 0 {
			return "", errDecode
		}
		q += j
		// A quote is escaped iff an odd number of backslashes precede it.
		b := q
		for b > start && d.data[b-1] == '\\' {
			b--
		}
		if (q-b)%2 == 0 {
			if !esc {
				esc = bytes.IndexByte(d.data[start:q], '\\') >= 0
			}
			d.i = q + 1
			if !esc {
				return jsonbytes.Alias(d.data[start:q]), nil
			}
			var ok bool
			if d.buf, ok = jsonbytes.Unescape(d.buf[:0], d.data[start:q]); !ok {
				return "", errDecode
			}
			return string(d.buf), nil
		}
		esc = true
		j = q + 1
	}
}
