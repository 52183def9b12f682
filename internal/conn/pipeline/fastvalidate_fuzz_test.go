package pipeline

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/internal/conn/schema"
)

// extraSchemas exercise the keywords of the fast validator that the built-in schemas
// do not use.
var extraSchemas = map[string]string{
	"x-num": `{"type":"object","properties":{"type":{"const":"x-num"},
		"n":{"type":"integer","minimum":-5,"exclusiveMaximum":10.5},
		"m":{"type":"number","maximum":3,"exclusiveMinimum":-2.5},
		"big":{"minimum":-9007199254740991,"maximum":9007199254740991},
		"e":{"enum":["a","b\"",1,true,null,[1],{"a":1}]},
		"c":{"const":2},"cs":{"const":"é\n"},"cf":{"const":1.5}},
		"required":["n"]}`,
	"x-comb": `{"type":"object","properties":{
		"a":{"oneOf":[{"type":"string","maxLength":3},{"type":"string","pattern":"^x"}]},
		"b":{"anyOf":[{"type":"null"},{"type":"array","items":{"type":"integer"},"maxItems":3}]},
		"c":{"not":{"type":"string"}},
		"d":{"if":{"type":"string"},"then":{"minLength":2},"else":{"type":"boolean"}},
		"f":{"allOf":[{"minimum":0},{"maximum":5}]}},
		"patternProperties":{"^p_[a-z]+$":{"type":"integer"}},
		"additionalProperties":{"type":"string"},
		"propertyNames":{"maxLength":8,"pattern":"^[a-z_]+$"},
		"dependentRequired":{"a":["b"]},"minProperties":1,"maxProperties":6}`,
	"x-arr": `{"type":"object","properties":{
		"t":{"type":"array","prefixItems":[{"type":"string"},{"type":"boolean"}],"items":false,"minItems":1},
		"u":{"type":["array","null"],"items":{"type":"object","required":["k"]}}}}`,
	"x-tree": `{"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
		"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"additionalProperties":false}},
		"type":"object","properties":{"tree":{"$ref":"#/$defs/node"}}}`,
	"x-pat": `{"properties":{"k":{"pattern":"(?i)^k+$"},"u":{"pattern":"é"},"w":{"pattern":"\\bword"},
		"s":{"type":"string","minLength":2,"maxLength":3},"q":{"pattern":"a|b+c$"}}}`,
	"x-false": `{"properties":{"no":false,"yes":true},"required":["type"]}`,
	// No fast validator: a reference cycle on one value, and an unsupported keyword.
	"x-cycle": `{"$defs":{"a":{"$ref":"#/$defs/a"}},"properties":{"c":{"$ref":"#/$defs/a"}}}`,
	"x-uniq":  `{"properties":{"l":{"uniqueItems":true}}}`,
}

var fastSeeds = []string{
	`{"type":"ping"}`, `{"type":"ping","id":7}`, `{"type":"pong","id":"abc"}`,
	`{"type":"refresh","token":"eyJ.x.y"}`,
	`{"type":"subscribe","channel":"chat:lobby","since":{"offset":10,"epoch":"e1"},"token":"t"}`,
	`{"type":"unsubscribe","channel":"chat:a/b=c+d@e"}`,
	`{"type":"publish","channel":"chat:lobby","payload":{"any":[1,2,{"x":null}]}}`,
	`{"type":"chat","id":"x","channel":"room:lobby","text":"hi \u00e9 \ud83d\ude00 \"q\""}`,
	`{"type":"data","payload":[1,2,3]}`, `{"type":"command","name":"orders.create","payload":{"n":1}}`,
	`{"type":"presence","channel":"room"}`,
	`{"type":"history","channel":"room","limit":50,"since":{"offset":0,"epoch":"x"}}`,
	`{"type":"ping","id":9007199254740991}`, `{"type":"ping","id":-9007199254740992}`,
	`{"type":"history","channel":"a","limit":1e3}`, `{"type":"history","channel":"a","limit":1.0}`,
	`{"type":"subscribe","channel":"a\u003ab"}`, `{"type":"chat","text":"\u0041","channel":"a:"}`,
	`{"type":"x-num","n":-5,"m":-2.4,"big":9007199254740991,"e":[1],"c":2,"cs":"\u00e9\n","cf":1.5}`,
	`{"type":"x-num","n":10,"e":{"a":1},"c":2.0}`,
	`{"type":"x-comb","a":"xyzw","b":[1,2],"c":1,"d":"ab","f":3,"p_q":1,"z":"s"}`,
	`{"type":"x-comb","a":"abc","b":null,"d":false}`,
	`{"type":"x-arr","t":["a",true],"u":[{"k":1}]}`, `{"type":"x-arr","t":["a",true,1],"u":null}`,
	`{"type":"x-tree","tree":{"v":1,"kids":[{"v":2,"kids":[]},{"v":3}]}}`,
	`{"type":"x-pat","k":"KKk","u":"aé","w":"a word","s":"éé","q":"xbbc"}`,
	`{"type":"x-false","yes":1}`, `{"type":"x-false","no":1}`,
	`{"type":"x-comb","p_\u0061":1,"\u0061":"\u0078y","b":[]}`, `{"type":"x-comb","a\n":"s"}`,
	`{"type":"x-cycle","c":1}`, `{"type":"x-uniq","l":[1,1]}`,
}

// fastRegistries are the built-ins and the extra schemas.
func fastRegistries(t testing.TB) (*schema.Registry, *schema.Registry) {
	t.Helper()
	builtin, err := schema.New(schema.Options{})
	if err != nil {
		t.Fatal(err)
	}
	extra, err := schema.New(schema.Options{NoBuiltins: true, Inline: extraSchemas})
	if err != nil {
		t.Fatal(err)
	}
	return builtin, extra
}

// oddNumber reports a number literal the fast validator leaves to jsonschema where a
// numeric keyword applies: a fraction, an exponent or more than 18 digits.
func oddNumber(data []byte) bool {
	return bytes.ContainsAny(data, ".eE") || strings.Contains(string(data), "0000000000000000000")
}

// checkFast validates data, which the scanner accepted, against every schema of the
// two registries both ways: a fast acceptance must be a jsonschema acceptance, and
// for the built-ins every jsonschema acceptance must be a fast one (but for number
// literals the fast validator leaves to jsonschema).
func checkFast(t *testing.T, builtin, extra *schema.Registry, data []byte) {
	v, err := decodeValue(data)
	if err != nil {
		t.Fatalf("decode of scanned input: %q", data)
	}
	for _, reg := range []*schema.Registry{builtin, extra} {
		for _, typ := range reg.Types() {
			sch, _ := reg.Lookup(typ)
			fast := sch.Accepts(data)
			viol := sch.Validate(v)
			if fast && viol != nil {
				t.Fatalf("%s: fast validator accepts what jsonschema refuses (%v): %s", typ, viol, data)
			}
			if !fast && viol == nil && reg == builtin && !oddNumber(data) {
				t.Fatalf("%s: fast validator does not accept a valid message: %s", typ, data)
			}
		}
	}
}

// FuzzFastValidatorAgreesWithJSONSchema mutates valid messages of every built-in type
// and of the extra schemas (checkFast says what must agree). Besides the raw bytes, a
// member key:val is spliced into data (replacing the member of that key when there
// is one), so that most inputs stay JSON and reach the validators.
func FuzzFastValidatorAgreesWithJSONSchema(f *testing.F) {
	vals := []string{`1`, `-0`, `"x"`, `null`, `true`, `[]`, `{}`, `"a:b"`, `1.5`, `"` + strings.Repeat("é", 65) + `"`, `[1,"a",{}]`}
	keys := []string{"id", "channel", "text", "limit", "since", "n", "e", "a", "p_x", "t", "tree", "zz"}
	for i, s := range fastSeeds {
		f.Add([]byte(s), keys[i%len(keys)], []byte(vals[i%len(vals)]))
	}
	f.Add([]byte(chatMessage(1024)), "channel", []byte(`"room:lobby"`))
	builtin, extra := fastRegistries(f)
	lim := scanLimits{depth: DefaultMaxDepth, keys: DefaultMaxKeys, array: DefaultMaxArray, str: DefaultMaxString, num: DefaultMaxNumber}
	sc := newScanner(lim)
	f.Fuzz(func(t *testing.T, data []byte, key string, val []byte) {
		if len(data)+len(key)+len(val) > 8192 {
			return
		}
		for _, in := range [][]byte{data, splice(data, key, val)} {
			_, fail, _ := sc.scan(in)
			sc.release()
			if fail == scanOK {
				checkFast(t, builtin, extra, in)
			}
		}
	})
}

// splice sets the top-level member key of the object data to val (raw JSON).
func splice(data []byte, key string, val []byte) []byte {
	if len(data) < 2 || data[len(data)-1] != '}' || key == "" {
		return nil
	}
	k, _ := json.Marshal(key)
	if i := bytes.Index(data, append(k, ':')); i > 0 {
		// Replace the member's value: up to the next ',' or '}' at the same level is a
		// guess; the scanner throws away what does not parse.
		j := i + len(k) + 1
		depth := 0
		for ; j < len(data); j++ {
			c := data[j]
			if c == '[' || c == '{' {
				depth++
			} else if c == ']' || c == '}' {
				if depth == 0 {
					break
				}
				depth--
			} else if c == ',' && depth == 0 {
				break
			}
		}
		out := append([]byte{}, data[:i+len(k)+1]...)
		out = append(out, val...)
		return append(out, data[j:]...)
	}
	out := append([]byte{}, data[:len(data)-1]...)
	if bytes.IndexByte(out, ':') > 0 {
		out = append(out, ',')
	}
	out = append(out, k...)
	out = append(out, ':')
	out = append(out, val...)
	return append(out, '}')
}
