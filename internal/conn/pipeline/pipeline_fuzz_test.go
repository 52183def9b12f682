package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

var fuzzSeeds = []string{
	`{"type":"ping"}`,
	`{"type":"chat","id":"x","channel":"room:lobby","text":"hi \u00e9 \ud83d\ude00"}`,
	`{"type":"subscribe","channel":"a","since":{"offset":1,"epoch":"e"}}`,
	`{"type":"publish","channel":"a","payload":{"a":[1,2.5e3,-0,true,null,"x"]}}`,
	`{"type":"chat","text":"a","text":"b"}`,
	`{"a":1,"\u0061":2}`,
	`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`,
	`{"type":"x"} `,
	`{"type":"x"}}`,
	`["\ud800"]`,
	"[\"\xff\"]",
	`[1e400, 1e401, 01, 1., .5, -]`,
	`{"type":"command","name":"n","payload":{"k":{"k":{"k":{}}}}}`,
	`nul`, `tru`, `"\u12"`, ``, ` `,
	`{"type":"chat","text":"sig"}`,
	`{"type":"publish","channel":"a","payload":{"sig":{"v":1}}}`,
	`{"type":"x","s\u0069g":{"v":1},"Sig":1}`,
	`{"type":"x","payload":[{"sig":1}],"sig":null}`,
}

// checkMember compares the scanner's raw value of a top-level member with
// encoding/json's decode of the whole message (exact name match: m is a map).
func checkMember(t *testing.T, m map[string]any, name string, got []byte) {
	t.Helper()
	want, ok := m[name]
	if !ok {
		if got != nil {
			t.Fatalf("%s %q found where there is none", name, got)
		}
		return
	}
	if got == nil {
		t.Fatalf("%s not found", name)
	}
	d := json.NewDecoder(bytes.NewReader(got))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s %q: %v", name, got, err)
	}
	a, _ := json.Marshal(v)
	b, _ := json.Marshal(want)
	if !bytes.Equal(a, b) {
		t.Fatalf("%s: got %s want %s", name, a, b)
	}
}

// stdDecode decodes data with encoding/json as decodeValue means to (UseNumber).
func stdDecode(t testing.TB, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("encoding/json: %q: %v", data, err)
	}
	return v
}

// decodeAgrees checks that decodeValue decodes data (valid JSON) to what
// encoding/json does, and returns that value.
func decodeAgrees(t testing.TB, data []byte) any {
	t.Helper()
	got, err := decodeValue(data)
	if err != nil {
		t.Fatalf("decodeValue %q: %v", data, err)
	}
	want := stdDecode(t, data)
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("decode differs from encoding/json:\n got %s\nwant %s", gb, wb)
	}
	return want
}

// FuzzScan compares the scanner with encoding/json: whatever the scanner accepts must
// be valid JSON whose decode agrees on "type" and "id"; whatever it calls a syntax
// error must be invalid JSON (for valid UTF-8 input, which the transport guarantees).
func FuzzScan(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	lim := scanLimits{depth: 8, keys: 16, array: 32, str: 64, num: 24}
	s := newScanner(lim)
	f.Fuzz(func(t *testing.T, data []byte) {
		res, fail, off := s.scan(data)
		defer s.release()
		if off < 0 || off > len(data) {
			t.Fatalf("offset %d out of range", off)
		}
		valid := json.Valid(data)
		switch fail {
		case scanOK:
			if !valid {
				t.Fatalf("accepted invalid JSON %q", data)
			}
			if !utf8.Valid(data) {
				t.Fatalf("accepted invalid UTF-8 %q", data)
			}
			want := decodeAgrees(t, data)
			if m, ok := want.(map[string]any); ok {
				typ, isStr := m["type"].(string)
				_, found := m["type"]
				if res.typFound != found || res.typString != isStr || (isStr && string(res.typ) != typ) {
					t.Fatalf("type: got %q %v %v, want %q %v %v", res.typ, res.typFound, res.typString, typ, found, isStr)
				}
				if id, ok := m["id"]; ok {
					a, _ := json.Marshal(stdDecode(t, res.id))
					b, _ := json.Marshal(id)
					if !bytes.Equal(a, b) {
						t.Fatalf("id: got %s want %s", a, b)
					}
				} else if res.id != nil {
					t.Fatalf("id %q found where there is none", res.id)
				}
				mem := res.members
				for name, got := range map[string][]byte{"sig": mem.Sig, "channel": mem.Channel, "payload": mem.Payload, "text": mem.Text,
					"since": mem.Since, "token": mem.Token, "limit": mem.Limit, "name": mem.Name} {
					checkMember(t, m, name, got)
				}
			}
		case failSyntax:
			if valid && utf8.Valid(data) {
				t.Fatalf("syntax error for valid JSON %q at %d", data, off)
			}
		default:
			// Limits, duplicates and surrogates are found at the first offending token;
			// what follows it is never read, so the input may be invalid JSON too.
		}
	})
}

// FuzzProcess runs whole messages through the pipeline with the built-in registry:
// no panic, every outcome well formed, error replies valid JSON that never carry more
// than a short piece of the input.
func FuzzProcess(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(chatMessage(1024)))
	p, err := New(Options{MaxBytes: 4096, Limiter: &fakeLimiter{allow: map[string]int{"pl:": 1 << 62}}})
	if err != nil {
		f.Fatal(err)
	}
	st := &ConnState{ConnID: "c", User: "u", IP: "192.0.2.1"}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, rej := p.Process(context.Background(), st, data)
		if rej == nil {
			if msg.Type == "" || !json.Valid(data) {
				t.Fatalf("accepted %q as %q", data, msg.Type)
			}
			if _, ok := p.Registry().Lookup(msg.Type); !ok {
				t.Fatalf("accepted unknown type %q", msg.Type)
			}
			return
		}
		if rej.Code == "" || rej.Message == "" {
			t.Fatalf("empty reject %+v", rej)
		}
		out := EncodeError(rej, msg.ID)
		if !json.Valid(out) {
			t.Fatalf("invalid error reply %s", out)
		}
		if len(out) > 600 {
			t.Fatalf("error reply of %d bytes", len(out))
		}
		if len(rej.Path) > 300 {
			t.Fatalf("path of %d bytes", len(rej.Path))
		}
		if len(data) > 40 && strings.Contains(string(out), string(data[:40])) {
			t.Fatalf("reply echoes the input: %s", out)
		}
	})
}
