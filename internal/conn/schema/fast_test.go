package schema

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestFastKnowsEveryKeyword fails when a jsonschema upgrade adds a field to Schema:
// the fast compiler must then learn to refuse (or model) it.
func TestFastKnowsEveryKeyword(t *testing.T) {
	known := strings.Fields(`up resource dynamicAnchors allPropsEvaluated allItemsEvaluated numItemsEvaluated
		DraftVersion Location Bool ID Ref Anchor RecursiveRef RecursiveAnchor DynamicRef DynamicAnchor Types Enum
		Const Not AllOf AnyOf OneOf If Then Else Format MaxProperties MinProperties Required PropertyNames
		Properties PatternProperties AdditionalProperties Dependencies DependentRequired DependentSchemas
		UnevaluatedProperties MinItems MaxItems UniqueItems Contains MinContains MaxContains Items
		AdditionalItems PrefixItems Items2020 UnevaluatedItems MinLength MaxLength Pattern ContentEncoding
		ContentMediaType ContentSchema Maximum Minimum ExclusiveMaximum ExclusiveMinimum MultipleOf Extensions
		Title Description Default Comment ReadOnly WriteOnly Examples Deprecated`)
	typ := reflect.TypeOf(jsonschemaSchema{})
	for i := 0; i < typ.NumField(); i++ {
		if name := typ.Field(i).Name; !slices.Contains(known, name) {
			t.Errorf("jsonschema.Schema has a new field %s: teach compileFast about it", name)
		}
	}
}

func TestFastCoverage(t *testing.T) {
	r := mustNew(t, Options{Inline: map[string]string{
		"d7":    `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object"}`,
		"fmt":   `{"properties":{"e":{"format":"email"}}}`,
		"mult":  `{"properties":{"n":{"multipleOf":2}}}`,
		"cycle": `{"$defs":{"a":{"allOf":[{"$ref":"#/$defs/a"}]}},"$ref":"#/$defs/a"}`,
		"rec":   `{"$defs":{"n":{"properties":{"k":{"$ref":"#/$defs/n"}}}},"$ref":"#/$defs/n"}`,
	}})
	for _, typ := range r.Types() {
		s, _ := r.Lookup(typ)
		want := !slices.Contains([]string{"d7", "mult", "cycle"}, typ)
		if s.FastPath() != want {
			_, err := compileFast(s.sch)
			t.Errorf("%s: FastPath %v, want %v (%v)", typ, s.FastPath(), want, err)
		}
	}
	// Formats are annotations in 2020-12 unless asserted: the fast path ignores them too.
	s, _ := r.Lookup("fmt")
	if !s.Accepts([]byte(`{"e":"not an email"}`)) {
		t.Error("format asserted")
	}
	if _, err := compileFast(mustLookup(t, r, "cycle").sch); !errors.Is(err, errUnsupported) {
		t.Errorf("cycle: %v", err)
	}
}

func mustLookup(t *testing.T, r *Registry, typ string) *Schema {
	t.Helper()
	s, ok := r.Lookup(typ)
	if !ok {
		t.Fatal(typ)
	}
	return s
}

// TestFastTable: the verdicts of the fast validator on the built-ins, next to
// jsonschema's (an "unknown" verdict shows as not accepted).
func TestFastTable(t *testing.T) {
	r := mustNew(t, Options{})
	cases := []struct {
		typ, in string
		accept  bool
	}{
		{"chat", `{"type":"chat","text":"hi"}`, true},
		{"chat", ` {"text" : "hi" , "type":"chat" , "id":-12} `, true},
		{"chat", `{"type":"chat","text":"hi","id":1.0}`, false}, // valid, left to jsonschema
		{"chat", `{"type":"chat","text":"` + strings.Repeat("é", 4000) + `"}`, true},
		{"chat", `{"type":"chat","text":"` + strings.Repeat("é", 4001) + `"}`, false},
		{"chat", `{"type":"chat","text":"` + strings.Repeat(`\n`, 4000) + `"}`, true},
		{"chat", `{"type":"chat","text":"` + strings.Repeat(`\ud83d\ude00`, 4001) + `"}`, false},
		{"chat", `{"type":"ch\u0061t","text":"x"}`, true},
		{"chat", `{"type":"chat","text":"x","extra":1}`, false},
		{"chat", `{"type":"chat"}`, false},
		{"chat", `{"type":"pong","text":"x"}`, false},
		{"ping", `{"type":"ping","id":"` + strings.Repeat("a", 64) + `"}`, true},
		{"ping", `{"type":"ping","id":"` + strings.Repeat("a", 65) + `"}`, false},
		{"ping", `{"type":"ping","id":9007199254740991}`, true},
		{"ping", `{"type":"ping","id":9007199254740992}`, false},
		{"ping", `{"type":"ping","id":true}`, false},
		{"subscribe", `{"type":"subscribe","channel":"a:b/c=d+e@f"}`, true},
		{"subscribe", `{"type":"subscribe","channel":"a\u003ab"}`, true},
		{"subscribe", `{"type":"subscribe","channel":"a:b:c"}`, false},
		{"subscribe", `{"type":"subscribe","channel":""}`, false},
		{"subscribe", `{"type":"subscribe","channel":"é"}`, false},
		{"subscribe", `{"type":"subscribe","channel":"a","since":{"offset":0,"epoch":"e"}}`, true},
		{"subscribe", `{"type":"subscribe","channel":"a","since":{"offset":-1,"epoch":"e"}}`, false},
		{"subscribe", `{"type":"subscribe","channel":"a","since":{"epoch":"e"}}`, false},
		{"history", `{"type":"history","channel":"a","limit":1000}`, true},
		{"history", `{"type":"history","channel":"a","limit":1001}`, false},
		{"history", `{"type":"history","channel":"a","limit":0}`, false},
		{"publish", `{"type":"publish","channel":"a","payload":{"deep":[[[{"x":"]}\""}]]]}}`, true},
		{"command", `{"type":"command","name":"a/b"}`, true},
		{"command", `{"type":"command","name":"a b"}`, false},
	}
	for _, c := range cases {
		s := mustLookup(t, r, c.typ)
		if got := s.Accepts([]byte(c.in)); got != c.accept {
			t.Errorf("%s: Accepts = %v, want %v", trunc(c.in), got, c.accept)
		}
		viol := s.Validate(decode(t, c.in))
		if c.accept && viol != nil {
			t.Errorf("%s: jsonschema refuses: %v", trunc(c.in), viol)
		}
	}
}

func trunc(s string) string {
	if len(s) > 70 {
		return s[:70]
	}
	return s
}

func TestAcceptsMalformed(t *testing.T) {
	r := mustNew(t, Options{})
	s := mustLookup(t, r, "publish")
	for _, in := range []string{``, `{`, `{"type"`, `{"type":"publish","channel":"a","payload":[`, `{"type":"publish","channel":"a","payload":1}}`,
		`{"type":"publish","channel":"a","payload":"\`, `[`, `"`, `{"type":"publish","channel":"a\u12","payload":1}`} {
		if s.Accepts([]byte(in)) {
			t.Errorf("accepts %q", in)
		}
	}
}

type jsonschemaSchema = jsonschema.Schema

// TestFastEscapedKey: an escaped key is unescaped into a buffer that validating its
// value may reuse; patternProperties must still see the key.
func TestFastEscapedKey(t *testing.T) {
	r := mustNew(t, Options{NoBuiltins: true, Inline: map[string]string{
		"k": `{"properties":{"p_a":{"const":"x"}},"patternProperties":{"^p_":{"type":"integer"}}}`,
	}})
	s := mustLookup(t, r, "k")
	in := `{"p_\u0061":"\u0078"}`
	if s.Accepts([]byte(in)) {
		t.Error("accepted")
	}
	if s.Validate(decode(t, in)) == nil {
		t.Error("jsonschema accepts")
	}
}
