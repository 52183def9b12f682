package schema

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDispatch decodes arbitrary JSON, dispatches it by its "type" member and validates
// it: never a panic, and every violation short, with a well-formed pointer.
func FuzzDispatch(f *testing.F) {
	for _, s := range []string{
		`{"type":"chat","text":"hi"}`,
		`{"type":"chat","text":5,"x~/y":1}`,
		`{"type":"subscribe","channel":"a:b","since":{"offset":-1}}`,
		`{"type":"publish","channel":"bad name","payload":[1,{"a":null}]}`,
		`{"type":"history","channel":"a","limit":1e3}`,
		`{"type":"ping","id":[1]}`,
		`{"type":"unknown"}`,
		`{"type":"command","name":"` + "\u00e9" + `"}`,
	} {
		f.Add([]byte(s))
	}
	reg := mustNew(f, Options{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return
		}
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		typ, _ := m["type"].(string)
		sch, ok := reg.Lookup(typ)
		if !ok {
			return
		}
		viol := sch.Validate(v)
		if viol == nil {
			return
		}
		if viol.Message == "" || len(viol.Message) > 80 {
			t.Fatalf("message %q", viol.Message)
		}
		if len(viol.Path) > MaxPath+8 || (viol.Path != "" && viol.Path[0] != '/') || !utf8.ValidString(viol.Path) {
			t.Fatalf("path %q", viol.Path)
		}
	})
}
