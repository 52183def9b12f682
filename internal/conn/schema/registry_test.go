package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mustNew builds a registry from o or fails the test.
func mustNew(t testing.TB, o Options) *Registry {
	t.Helper()
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func decode(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestBuiltins(t *testing.T) {
	r := mustNew(t, Options{})
	want := []string{"chat", "command", "data", "history", "ping", "pong", "presence", "publish", "refresh", "subscribe", "unsubscribe"}
	if !slices.Equal(r.Types(), want) {
		t.Errorf("types %v", r.Types())
	}
	if _, ok := r.Lookup(DefsName); ok {
		t.Error("defs is a message type")
	}
	if s, ok := r.LookupBytes([]byte("chat")); !ok || s.Type() != "chat" {
		t.Error("LookupBytes")
	}
	if err := r.Validate("nope", decode(t, `{}`)); !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown: %v", err)
	}
	// The "type" const of each schema matches its name.
	for _, typ := range want {
		if err := r.Validate(typ, decode(t, `{"type":"other"}`)); err == nil {
			t.Errorf("%s accepts another type", typ)
		}
	}
}

func TestViolations(t *testing.T) {
	r := mustNew(t, Options{})
	cases := []struct{ typ, in, path, msg string }{
		{"chat", `{"type":"chat"}`, "/text", "missing required property"},
		{"chat", `{"type":"chat","text":[]}`, "/text", "expected string, got array"},
		{"chat", `{"type":"chat","text":"a","x/y~z":1}`, "/x~1y~0z", "unexpected property"},
		{"chat", `{"type":"chat","text":"a","` + strings.Repeat("k", 100) + `":1}`, "/" + strings.Repeat("k", MaxSegment), "unexpected property"},
		{"subscribe", `{"type":"subscribe","channel":"has space"}`, "/channel", "does not match the required pattern"},
		{"subscribe", `{"type":"subscribe","channel":"a","since":{"offset":-1,"epoch":"e"}}`, "/since/offset", "must be >= 0"},
		{"history", `{"type":"history","channel":"a","limit":5000}`, "/limit", "must be <= 1000"},
		{"ping", `{"type":"ping","id":true}`, "/id", "expected integer or string, got boolean"},
		{"ping", `{"type":"ping","id":"` + strings.Repeat("i", 65) + `"}`, "/id", "longer than 64 characters"},
	}
	for _, c := range cases {
		err := r.Validate(c.typ, decode(t, c.in))
		var v *Violation
		if !errors.As(err, &v) {
			t.Errorf("%s: got %v", c.in, err)
			continue
		}
		if v.Path != c.path || v.Message != c.msg {
			t.Errorf("%s: got %q %q, want %q %q", c.in, v.Path, v.Message, c.path, c.msg)
		}
	}
}

func TestPointerBounds(t *testing.T) {
	toks := make([]string, 50)
	for i := range toks {
		toks[i] = strings.Repeat("~", 40)
	}
	p := pointer(toks)
	if len(p) > MaxPath {
		t.Errorf("pointer of %d bytes", len(p))
	}
	if got := pointer([]string{"é" + strings.Repeat("é", 20)}); len(got) > MaxSegment+1 || !strings.HasPrefix(got, "/é") {
		t.Errorf("got %q", got)
	}
}

func TestDirAndInlineOverride(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A dir schema overriding a built-in, a new type using the shared defs, and a
	// non-JSON file that is ignored.
	write("chat.json", `{"type":"object","properties":{"text":{"type":"string","maxLength":3}},"required":["text"]}`)
	write("vote.json", `{"type":"object","properties":{"channel":{"$ref":"defs.json#/$defs/channel"}},"required":["channel"]}`)
	write("README.md", `not a schema`)
	r := mustNew(t, Options{Dir: dir, Inline: map[string]string{
		"vote": `{"type":"object","required":["choice"]}`,
	}})
	if err := r.Validate("chat", decode(t, `{"type":"chat","text":"abcd"}`)); err == nil {
		t.Error("dir chat schema not applied")
	}
	if err := r.Validate("chat", decode(t, `{"type":"chat","text":"abc","extra":1}`)); err != nil {
		t.Errorf("dir chat schema: %v", err)
	}
	if err := r.Validate("vote", decode(t, `{"type":"vote","choice":1}`)); err != nil {
		t.Errorf("inline must override dir: %v", err)
	}
	if err := r.Validate("ping", decode(t, `{"type":"ping"}`)); err != nil {
		t.Errorf("built-in ping kept: %v", err)
	}

	r = mustNew(t, Options{Dir: dir, NoBuiltins: true})
	if !slices.Equal(r.Types(), []string{"chat", "vote"}) {
		t.Errorf("NoBuiltins types %v", r.Types())
	}
	if err := r.Validate("vote", decode(t, `{"channel":"bad name"}`)); err == nil {
		t.Error("defs.json reference not applied")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []Options{
		{Dir: filepath.Join(dir, "missing")},
		{Inline: map[string]string{"x": `{"type":`}},
		{Inline: map[string]string{"x": `{"type":"nonsense"}`}},
		{Inline: map[string]string{"bad name!": `{}`}},
		{Inline: map[string]string{"x": `{"$ref":"file:///etc/passwd"}`}},
		{Inline: map[string]string{"x": `{"$ref":"https://example.com/s.json"}`}},
		{Inline: map[string]string{"x": `{"$ref":"other.json"}`}},
	}
	for _, o := range cases {
		if _, err := New(o); err == nil {
			t.Errorf("New(%v) succeeded", o)
		}
	}
	big := bytes.Repeat([]byte(" "), maxSchemaFile+1)
	if err := os.WriteFile(filepath.Join(dir, "big.json"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("big file: %v", err)
	}
}
