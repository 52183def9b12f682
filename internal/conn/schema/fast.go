package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/wsgate/wsgate/internal/jsonbytes"
)

// The fast validator decides, straight from the JSON text and without building a
// value tree, whether a message is valid. It is compiled from the schema that
// jsonschema compiled (after $ref resolution), so the JSON Schema documents stay the
// only source of truth, and it covers a subset of draft 2020-12: boolean schemas,
// type, const, enum, $ref, allOf/anyOf/oneOf/not, if/then/else, properties, required,
// additionalProperties, patternProperties, propertyNames, dependentRequired,
// min/maxProperties, prefixItems, items, min/maxItems, min/maxLength, pattern and
// minimum/maximum/exclusiveMinimum/exclusiveMaximum. A schema using anything else, or
// a cycle of references on one value, gets no fast validator.
//
// Its verdicts are three-valued: valid, invalid, or unknown when the instance is
// outside what it models (a number literal with a fraction or exponent where a numeric
// keyword applies, a numeric const that is not a small integer, ...). Only "valid" is
// acted upon: Schema.Accepts returns true for it and callers skip jsonschema; every
// other verdict sends the message to jsonschema, which decides and words the error.
// FuzzFastValidatorAgreesWithJSONSchema checks that the verdicts agree.

type verdict uint8

const (
	vUnknown verdict = iota
	vValid
	vInvalid
)

// and combines the verdicts of two conjuncts.
func and(a, b verdict) verdict {
	switch {
	case a == vInvalid || b == vInvalid:
		return vInvalid
	case a == vUnknown || b == vUnknown:
		return vUnknown
	}
	return vValid
}

func not(v verdict) verdict {
	switch v {
	case vValid:
		return vInvalid
	case vInvalid:
		return vValid
	}
	return vUnknown
}

// JSON types as a bit set.
const (
	tNull uint8 = 1 << iota
	tBool
	tNumber
	tInteger
	tString
	tArray
	tObject
)

// Small integers are exact in int64 and far from its limits, so bounds can be clamped.
const (
	maxSmallDigits = 18
	clampBound     = int64(1) << 62
)

// constVal is a const or enum value as the fast validator compares it.
type constVal struct {
	kind uint8 // tNull, tBool, tNumber (small integer in n), tString, or 0: anything else
	b    bool
	n    int64
	s    string
}

type keyEntry struct {
	name string
	node *fnode // properties[name], nil if name is only required or a dependency
}

type depReq struct {
	slot int
	need uint64
}

type patProp struct {
	pat  *pattern
	node *fnode
}

// fnode is one compiled schema.
type fnode struct {
	always  int8 // 1: true schema, -1: false schema, 0: check the keywords
	trivial bool // accepts every value (the true schema, or no assertions at all)

	types uint8 // 0: any type

	hasConst bool
	consts   []constVal // const (one value) or enum
	constsOf uint8      // the types consts has values of
	complexC bool       // consts has an array, object or non-small number

	ref                 *fnode
	allOf, anyOf, oneOf []*fnode
	notN                *fnode
	ifN, thenN, elseN   *fnode

	// object
	minProps, maxProps int // -1: none
	keys               []keyEntry
	keyIndex           map[string]int // for objects with many keys
	reqMask            uint64
	deps               []depReq
	patProps           []patProp
	addl               *fnode
	propNames          *fnode
	object             bool // any object keyword present

	// array
	minItems, maxItems int // -1: none
	prefix             []*fnode
	items              *fnode
	array              bool

	// string
	minLen, maxLen int // -1: none
	pat            *pattern
	str            bool

	// number: bounds for small integer instances, inclusive
	numeric      bool
	lo, hi       int64
	hasLo, hasHi bool
}

var errUnsupported = errors.New("schema: not supported by the fast validator")

type fastCompiler struct {
	nodes map[*jsonschema.Schema]*fnode
}

// compileFast returns the fast validator of s, or an error saying why it has none.
func compileFast(s *jsonschema.Schema) (*fnode, error) {
	c := fastCompiler{nodes: map[*jsonschema.Schema]*fnode{}}
	n, err := c.node(s)
	if err != nil {
		return nil, err
	}
	if err := checkCycles(n, map[*fnode]uint8{}); err != nil {
		return nil, err
	}
	return n, nil
}

func (c *fastCompiler) node(s *jsonschema.Schema) (*fnode, error) {
	if n, ok := c.nodes[s]; ok {
		return n, nil
	}
	n := &fnode{minProps: -1, maxProps: -1, minItems: -1, maxItems: -1, minLen: -1, maxLen: -1}
	c.nodes[s] = n
	if s.Bool != nil {
		if *s.Bool {
			n.always, n.trivial = 1, true
		} else {
			n.always = -1
		}
		return n, nil
	}
	if s.DraftVersion != 2020 {
		return nil, fmt.Errorf("%w: draft %d", errUnsupported, s.DraftVersion)
	}
	switch {
	case s.RecursiveRef != nil, s.DynamicRef != nil, s.Format != nil,
		len(s.Dependencies) > 0, len(s.DependentSchemas) > 0, s.UnevaluatedProperties != nil,
		s.Contains != nil, s.MinContains != nil, s.MaxContains != nil, s.UniqueItems,
		s.Items != nil, s.AdditionalItems != nil, s.UnevaluatedItems != nil,
		s.ContentEncoding != nil, s.ContentMediaType != nil, s.ContentSchema != nil,
		s.MultipleOf != nil, len(s.Extensions) > 0:
		return nil, fmt.Errorf("%w: keyword at %s", errUnsupported, s.Location)
	}
	var err error
	sub := func(x *jsonschema.Schema) *fnode {
		if x == nil || err != nil {
			return nil
		}
		var m *fnode
		m, err = c.node(x)
		return m
	}
	subs := func(xs []*jsonschema.Schema) []*fnode {
		var out []*fnode
		for _, x := range xs {
			out = append(out, sub(x))
		}
		return out
	}
	if s.Types != nil {
		for _, t := range s.Types.ToStrings() {
			n.types |= map[string]uint8{"null": tNull, "boolean": tBool, "number": tNumber, "integer": tInteger,
				"string": tString, "array": tArray, "object": tObject}[t]
		}
	}
	if s.Const != nil {
		n.hasConst = true
		n.addConst(*s.Const)
	}
	if s.Enum != nil {
		if n.hasConst {
			// Both keywords: keep jsonschema's behaviour out of the fast path.
			return nil, fmt.Errorf("%w: const and enum at %s", errUnsupported, s.Location)
		}
		n.hasConst = true
		for _, v := range s.Enum.Values {
			n.addConst(v)
		}
	}
	n.ref = sub(s.Ref)
	n.allOf, n.anyOf, n.oneOf = subs(s.AllOf), subs(s.AnyOf), subs(s.OneOf)
	n.notN = sub(s.Not)
	n.ifN, n.thenN, n.elseN = sub(s.If), sub(s.Then), sub(s.Else)

	// object
	slot := func(name string) (int, error) {
		for i, k := range n.keys {
			if k.name == name {
				return i, nil
			}
		}
		if len(n.keys) >= 64 {
			return 0, fmt.Errorf("%w: more than 64 named properties at %s", errUnsupported, s.Location)
		}
		n.keys = append(n.keys, keyEntry{name: name})
		return len(n.keys) - 1, nil
	}
	for name, ps := range s.Properties {
		i, e := slot(name)
		if e != nil {
			return nil, e
		}
		n.keys[i].node = sub(ps)
	}
	for _, name := range s.Required {
		i, e := slot(name)
		if e != nil {
			return nil, e
		}
		n.reqMask |= 1 << i
	}
	for name, need := range s.DependentRequired {
		i, e := slot(name)
		if e != nil {
			return nil, e
		}
		d := depReq{slot: i}
		for _, m := range need {
			j, e := slot(m)
			if e != nil {
				return nil, e
			}
			d.need |= 1 << j
		}
		n.deps = append(n.deps, d)
	}
	if len(n.keys) > 8 {
		n.keyIndex = make(map[string]int, len(n.keys))
		for i, k := range n.keys {
			n.keyIndex[k.name] = i
		}
	}
	if len(s.PatternProperties) > 64 {
		return nil, fmt.Errorf("%w: more than 64 patternProperties at %s", errUnsupported, s.Location)
	}
	for re, ps := range s.PatternProperties {
		p, e := patternOf(re)
		if e != nil {
			return nil, e
		}
		n.patProps = append(n.patProps, patProp{pat: p, node: sub(ps)})
	}
	switch a := s.AdditionalProperties.(type) {
	case nil:
	case bool:
		n.addl = &fnode{always: -1}
		if a {
			n.addl = &fnode{always: 1, trivial: true}
		}
	case *jsonschema.Schema:
		n.addl = sub(a)
	default:
		return nil, fmt.Errorf("%w: additionalProperties at %s", errUnsupported, s.Location)
	}
	n.propNames = sub(s.PropertyNames)
	if s.MinProperties != nil {
		n.minProps = *s.MinProperties
	}
	if s.MaxProperties != nil {
		n.maxProps = *s.MaxProperties
	}
	n.object = len(n.keys) > 0 || len(n.patProps) > 0 || n.addl != nil || n.propNames != nil || n.minProps >= 0 || n.maxProps >= 0

	// array
	n.prefix = subs(s.PrefixItems)
	n.items = sub(s.Items2020)
	if s.MinItems != nil {
		n.minItems = *s.MinItems
	}
	if s.MaxItems != nil {
		n.maxItems = *s.MaxItems
	}
	n.array = len(n.prefix) > 0 || n.items != nil || n.minItems >= 0 || n.maxItems >= 0

	// string
	if s.MinLength != nil {
		n.minLen = *s.MinLength
	}
	if s.MaxLength != nil {
		n.maxLen = *s.MaxLength
	}
	if s.Pattern != nil {
		p, e := patternOf(s.Pattern)
		if e != nil {
			return nil, e
		}
		n.pat = p
	}
	n.str = n.minLen >= 0 || n.maxLen >= 0 || n.pat != nil

	// number
	n.lo, n.hi = -clampBound, clampBound
	if r := s.Minimum; r != nil {
		n.raiseLo(ceilRat(r))
	}
	if r := s.ExclusiveMinimum; r != nil {
		n.raiseLo(new(big.Int).Add(floorRat(r), big.NewInt(1)))
	}
	if r := s.Maximum; r != nil {
		n.lowerHi(floorRat(r))
	}
	if r := s.ExclusiveMaximum; r != nil {
		n.lowerHi(new(big.Int).Sub(ceilRat(r), big.NewInt(1)))
	}
	n.numeric = n.hasLo || n.hasHi
	if err != nil {
		return nil, err
	}
	n.trivial = n.types == 0 && !n.hasConst && n.ref == nil && len(n.allOf) == 0 && len(n.anyOf) == 0 &&
		len(n.oneOf) == 0 && n.notN == nil && n.ifN == nil && !n.object && !n.array && !n.str && !n.numeric &&
		len(n.deps) == 0 && n.reqMask == 0
	return n, nil
}

func patternOf(re jsonschema.Regexp) (*pattern, error) {
	r, ok := re.(*regexp.Regexp)
	if !ok {
		return nil, fmt.Errorf("%w: regexp engine %T", errUnsupported, re)
	}
	return newPattern(r), nil
}

func (n *fnode) addConst(v any) {
	var c constVal
	switch v := v.(type) {
	case nil:
		c.kind = tNull
	case bool:
		c.kind, c.b = tBool, v
	case string:
		c.kind, c.s = tString, v
	case json.Number:
		n.constsOf |= tNumber
		if x, ok := smallInt([]byte(v)); ok {
			c.kind, c.n = tNumber, x
		} else {
			n.complexC = true
		}
	case []any:
		n.constsOf |= tArray
		n.complexC = true
	case map[string]any:
		n.constsOf |= tObject
		n.complexC = true
	default:
		n.complexC = true
		n.constsOf |= tNumber
	}
	n.constsOf |= c.kind
	if c.kind != 0 {
		n.consts = append(n.consts, c)
	}
}

func (n *fnode) raiseLo(b *big.Int) {
	n.hasLo = true
	if v := clamp(b); v > n.lo {
		n.lo = v
	}
}

func (n *fnode) lowerHi(b *big.Int) {
	n.hasHi = true
	if v := clamp(b); v < n.hi {
		n.hi = v
	}
}

// clamp maps b into [-2^62, 2^62]; instances compared with it are below 10^18 in
// magnitude, so the comparison is unchanged.
func clamp(b *big.Int) int64 {
	if b.Cmp(big.NewInt(clampBound)) > 0 {
		return clampBound
	}
	if b.Cmp(big.NewInt(-clampBound)) < 0 {
		return -clampBound
	}
	return b.Int64()
}

func floorRat(r *big.Rat) *big.Int {
	// Euclidean division by the positive denominator rounds toward -inf.
	q, _ := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	return q
}

func ceilRat(r *big.Rat) *big.Int {
	q, m := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	return q
}

// checkCycles refuses a cycle of edges that stay on the same instance value ($ref,
// allOf, ...): jsonschema reports those as errors at validation time.
func checkCycles(n *fnode, state map[*fnode]uint8) error {
	switch state[n] {
	case 1:
		return fmt.Errorf("%w: reference cycle", errUnsupported)
	case 2:
		return nil
	}
	state[n] = 1
	same := append([]*fnode{n.ref, n.notN, n.ifN, n.thenN, n.elseN}, n.allOf...)
	same = append(same, n.anyOf...)
	same = append(same, n.oneOf...)
	for _, m := range same {
		if m != nil {
			if err := checkCycles(m, state); err != nil {
				return err
			}
		}
	}
	state[n] = 2
	// Children on other values may form cycles (recursive schemas); their own
	// same-value edges still need checking.
	var other []*fnode
	for _, k := range n.keys {
		other = append(other, k.node)
	}
	for _, p := range n.patProps {
		other = append(other, p.node)
	}
	other = append(other, n.addl, n.propNames, n.items)
	other = append(other, n.prefix...)
	for _, m := range other {
		if m != nil && state[m] == 0 {
			if err := checkCycles(m, state); err != nil {
				return err
			}
		}
	}
	return nil
}

// smallInt parses a plain integer literal (no fraction, no exponent) of at most
// maxSmallDigits digits.
func smallInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > maxSmallDigits {
		return 0, false
	}
	var x int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		x = x*10 + int64(c-'0')
	}
	if neg {
		x = -x
	}
	return x, true
}

// fastMaxDepth bounds the validator's recursion on input that skipped the pipeline's
// scanner (which bounds depth itself).
const fastMaxDepth = 512

// cursor walks one JSON text. All methods tolerate malformed input: they return
// vUnknown (or a position past the end), never panic.
type cursor struct {
	data  []byte
	depth int
	buf   []byte
}

func (c *cursor) ws(i int) int {
	for i < len(c.data) {
		switch c.data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// strEnd returns the index just past the string starting at data[i] == '"' and
// whether it has escapes; -1 if unterminated.
func (c *cursor) strEnd(i int) (int, bool) {
	esc := false
	j := i + 1
	for {
		q := bytes.IndexByte(c.data[j:], '"')
		if q < 0 {
			return -1, esc
		}
		q += j
		b := q
		for b > i+1 && c.data[b-1] == '\\' {
			b--
		}
		if b < q {
			esc = true
		}
		if (q-b)%2 == 0 {
			if !esc {
				esc = bytes.IndexByte(c.data[i+1:q], '\\') >= 0
			}
			return q + 1, esc
		}
		j = q + 1
	}
}

// skip returns the index just past the value at i, -1 if malformed.
func (c *cursor) skip(i int) int {
	depth := 0
	for i < len(c.data) {
		switch ch := c.data[i]; ch {
		case '"':
			e, _ := c.strEnd(i)
			if e < 0 {
				return -1
			}
			i = e
		case '{', '[':
			depth++
			i++
		case '}', ']':
			depth--
			i++
		case ',', ':', ' ', '\t', '\n', '\r':
			i++
		default:
			for i < len(c.data) && !delim(c.data[i]) {
				i++
			}
		}
		if depth <= 0 {
			if depth < 0 {
				return -1
			}
			return i
		}
	}
	return -1
}

func delim(ch byte) bool {
	switch ch {
	case ',', ':', '}', ']', '"', '{', '[', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

// value validates the value at i (after whitespace) against n and returns the index
// just past it (-1 when malformed, then the verdict is vUnknown).
func (c *cursor) value(n *fnode, i int) (int, verdict) {
	i = c.ws(i)
	if n.trivial {
		return c.skip(i), vValid
	}
	if n.always < 0 {
		return c.skip(i), vInvalid
	}
	if i >= len(c.data) || c.depth > fastMaxDepth {
		return -1, vUnknown
	}
	var t uint8
	var end int
	switch ch := c.data[i]; {
	case ch == '{':
		t = tObject
	case ch == '[':
		t = tArray
	case ch == '"':
		t = tString
	case ch == 't' || ch == 'f':
		t, end = tBool, i+4
		if ch == 'f' {
			end++
		}
	case ch == 'n':
		t, end = tNull, i+4
	case ch == '-' || ch >= '0' && ch <= '9':
		t, end = tNumber, i
		for end < len(c.data) && !delim(c.data[end]) {
			end++
		}
	default:
		return -1, vUnknown
	}
	if end > len(c.data) {
		return -1, vUnknown
	}

	v := vValid
	var small int64
	isSmall, plain := false, false
	if t == tNumber {
		lit := c.data[i:end]
		small, isSmall = smallInt(lit)
		plain = isSmall || plainInt(lit)
	}
	if n.types != 0 {
		switch {
		case n.types&t != 0:
		case t == tNumber && n.types&tInteger != 0:
			if !plain {
				v = vUnknown // 1.0 and 1e2 are integers too: leave it to jsonschema
			}
		default:
			return c.skipEnd(i, end), vInvalid
		}
	}
	if n.hasConst {
		v = and(v, n.constMatch(c, t, i, end, small, isSmall))
		if v == vInvalid {
			return c.skipEnd(i, end), v
		}
	}
	if n.ref != nil {
		v = and(v, c.same(n.ref, i))
	}
	for _, m := range n.allOf {
		v = and(v, c.same(m, i))
	}
	if len(n.anyOf) > 0 {
		a := vInvalid
		for _, m := range n.anyOf {
			switch c.same(m, i) {
			case vValid:
				a = vValid
			case vUnknown:
				if a == vInvalid {
					a = vUnknown
				}
			}
			if a == vValid {
				break
			}
		}
		v = and(v, a)
	}
	if len(n.oneOf) > 0 {
		valid, unknown := 0, false
		for _, m := range n.oneOf {
			switch c.same(m, i) {
			case vValid:
				valid++
			case vUnknown:
				unknown = true
			}
		}
		switch {
		case valid > 1:
			v = and(v, vInvalid)
		case unknown:
			v = and(v, vUnknown)
		case valid == 0:
			v = and(v, vInvalid)
		}
	}
	if n.notN != nil {
		v = and(v, not(c.same(n.notN, i)))
	}
	if n.ifN != nil && (n.thenN != nil || n.elseN != nil) {
		switch c.same(n.ifN, i) {
		case vValid:
			if n.thenN != nil {
				v = and(v, c.same(n.thenN, i))
			}
		case vInvalid:
			if n.elseN != nil {
				v = and(v, c.same(n.elseN, i))
			}
		default:
			v = and(v, vUnknown)
		}
	}
	if v == vInvalid {
		return c.skipEnd(i, end), v
	}

	switch t {
	case tObject:
		if !n.object && len(n.deps) == 0 && n.reqMask == 0 {
			return c.skip(i), v
		}
		e, ov := c.object(n, i)
		return e, and(v, ov)
	case tArray:
		if !n.array {
			return c.skip(i), v
		}
		e, av := c.array(n, i)
		return e, and(v, av)
	case tString:
		e, esc := c.strEnd(i)
		if e < 0 {
			return -1, vUnknown
		}
		if n.str {
			v = and(v, n.strCheck(c, c.data[i+1:e-1], esc))
		}
		return e, v
	case tNumber:
		if n.numeric {
			switch {
			case !isSmall:
				v = and(v, vUnknown)
			case n.hasLo && small < n.lo, n.hasHi && small > n.hi:
				v = vInvalid
			}
		}
		return end, v
	}
	return end, v
}

// plainInt reports a plain integer literal of any length.
func plainInt(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return false
		}
	}
	return true
}

func (c *cursor) skipEnd(i, end int) int {
	if end > 0 {
		return end
	}
	return c.skip(i)
}

// same validates the value at i against m, a schema applying to that same value.
func (c *cursor) same(m *fnode, i int) verdict {
	c.depth++
	_, v := c.value(m, i)
	c.depth--
	return v
}

func (n *fnode) constMatch(c *cursor, t uint8, i, end int, small int64, isSmall bool) verdict {
	if n.constsOf&t == 0 {
		return vInvalid
	}
	switch t {
	case tNull:
		return vValid
	case tBool:
		b := c.data[i] == 't'
		for _, k := range n.consts {
			if k.kind == tBool && k.b == b {
				return vValid
			}
		}
		return vInvalid
	case tString:
		e, esc := c.strEnd(i)
		if e < 0 {
			return vUnknown
		}
		s, ok := c.str(c.data[i+1:e-1], esc)
		if !ok {
			return vUnknown
		}
		for _, k := range n.consts {
			if k.kind == tString && k.s == s {
				return vValid
			}
		}
		return vInvalid
	case tNumber:
		if !isSmall || n.complexC {
			for _, k := range n.consts {
				if k.kind == tNumber && isSmall && k.n == small {
					return vValid
				}
			}
			return vUnknown
		}
		for _, k := range n.consts {
			if k.kind == tNumber && k.n == small {
				return vValid
			}
		}
		return vInvalid
	}
	return vUnknown // arrays and objects
}

// str returns the unescaped content of a string. The result aliases the message or
// the cursor's buffer: it is compared or matched at once, never kept.
func (c *cursor) str(raw []byte, esc bool) (string, bool) {
	if !esc {
		return jsonbytes.Alias(raw), true
	}
	b, ok := jsonbytes.Unescape(c.buf[:0], raw)
	c.buf = b
	return jsonbytes.Alias(b), ok
}

func (n *fnode) strCheck(c *cursor, raw []byte, esc bool) verdict {
	if n.minLen >= 0 || n.maxLen >= 0 {
		// Without escapes, the byte length bounds the rune count: runes <= bytes <=
		// 4*runes. Count only when the bounds do not decide.
		count := esc
		if !esc {
			l := len(raw)
			count = n.maxLen >= 0 && l > n.maxLen || n.minLen >= 0 && (l+3)/4 < n.minLen
		}
		if count {
			r, ok := runeCount(raw, esc)
			if !ok {
				return vUnknown
			}
			if outside(r, n.minLen, n.maxLen) {
				return vInvalid
			}
		}
	}
	if n.pat != nil {
		if !esc {
			if !n.pat.match(jsonbytes.Alias(raw)) {
				return vInvalid
			}
		} else {
			s, ok := c.str(raw, esc)
			if !ok {
				return vUnknown
			}
			if !n.pat.match(s) {
				return vInvalid
			}
		}
	}
	return vValid
}

// runeCount counts the runes of a string's content after unescaping, as
// utf8.RuneCount of the decoded string does.
func runeCount(raw []byte, esc bool) (int, bool) {
	if !esc {
		return utf8.RuneCount(raw), true
	}
	n := 0
	for len(raw) > 0 {
		j := bytes.IndexByte(raw, '\\')
		if j < 0 {
			return n + utf8.RuneCount(raw), true
		}
		n += utf8.RuneCount(raw[:j])
		raw = raw[j:]
		if len(raw) < 2 {
			return 0, false
		}
		if raw[1] != 'u' {
			n++
			raw = raw[2:]
			continue
		}
		r, ok := jsonbytes.Hex4(raw, 2)
		if !ok {
			return 0, false
		}
		if r >= 0xD800 && r < 0xDC00 {
			if len(raw) < 12 || raw[6] != '\\' || raw[7] != 'u' {
				return 0, false
			}
			if r2, ok := jsonbytes.Hex4(raw, 8); !ok || r2 < 0xDC00 || r2 > 0xDFFF {
				return 0, false
			}
			raw = raw[12:]
		} else if r >= 0xDC00 && r <= 0xDFFF {
			return 0, false
		} else {
			raw = raw[6:]
		}
		n++
	}
	return n, true
}

func (c *cursor) object(n *fnode, i int) (int, verdict) {
	start := i
	c.depth++
	defer func() { c.depth-- }()
	v := vValid
	var present uint64
	count := 0
	i, more := c.open(i, '}')
	for more {
		i = c.ws(i)
		if i >= len(c.data) || c.data[i] != '"' {
			return -1, vUnknown
		}
		kStart := i
		kEnd, esc := c.strEnd(i)
		if kEnd < 0 {
			return -1, vUnknown
		}
		var key string
		if esc {
			s, ok := c.str(c.data[i+1:kEnd-1], true)
			if !ok {
				return -1, vUnknown
			}
			key = s
		} else {
			key = jsonbytes.Alias(c.data[i+1 : kEnd-1])
		}
		i = c.ws(kEnd)
		if i >= len(c.data) || c.data[i] != ':' {
			return -1, vUnknown
		}
		i = c.ws(i + 1)
		count++
		// Decide everything that needs the key before validating the value, which
		// may reuse the buffer an escaped key was unescaped into.
		k := n.lookup(key)
		var pm uint64
		for j, pp := range n.patProps {
			if pp.pat.match(key) {
				pm |= 1 << j
			}
		}
		end := -2
		matched := false
		if k >= 0 {
			present |= 1 << k
			if m := n.keys[k].node; m != nil {
				matched = true
				var mv verdict
				end, mv = c.value(m, i)
				v = and(v, mv)
			}
		}
		for j, pp := range n.patProps {
			if pm&(1<<j) != 0 {
				matched = true
				var mv verdict
				end, mv = c.value(pp.node, i)
				v = and(v, mv)
			}
		}
		if !matched && n.addl != nil {
			var mv verdict
			end, mv = c.value(n.addl, i)
			v = and(v, mv)
		}
		if n.propNames != nil {
			v = and(v, c.same(n.propNames, kStart))
		}
		if end == -2 {
			end = c.skip(i)
		}
		if end < 0 {
			return -1, vUnknown
		}
		if v == vInvalid {
			return c.skip(start), vInvalid
		}
		if i, more = c.next(end, '}'); i < 0 {
			return -1, vUnknown
		}
	}
	if outside(count, n.minProps, n.maxProps) {
		return i, vInvalid
	}
	if present&n.reqMask != n.reqMask {
		return i, vInvalid
	}
	for _, d := range n.deps {
		if present&(1<<d.slot) != 0 && present&d.need != d.need {
			return i, vInvalid
		}
	}
	return i, v
}

// open steps inside the object or array whose opening byte is at i. It
// returns the index of the first member or element and true, or, for an empty
// one, the index after closing and false.
func (c *cursor) open(i int, closing byte) (int, bool) {
	i = c.ws(i + 1)
	if i < len(c.data) && c.data[i] == closing {
		return i + 1, false
	}
	return i, true
}

// outside reports whether count breaks the bounds lo and hi (-1: none).
func outside(count, lo, hi int) bool {
	return lo >= 0 && count < lo || hi >= 0 && count > hi
}

// next steps over what follows a member or element ending at end: ','
// (more to come) or the container's closing byte. It returns the index after
// it, or -1 when something else (or nothing) follows.
func (c *cursor) next(end int, closing byte) (int, bool) {
	i := c.ws(end)
	if i < len(c.data) {
		switch c.data[i] {
		case ',':
			return i + 1, true
		case closing:
			return i + 1, false
		}
	}
	return -1, false
}

func (n *fnode) lookup(key string) int {
	if n.keyIndex != nil {
		if k, ok := n.keyIndex[key]; ok {
			return k
		}
		return -1
	}
	for k := range n.keys {
		if n.keys[k].name == key {
			return k
		}
	}
	return -1
}

func (c *cursor) array(n *fnode, i int) (int, verdict) {
	c.depth++
	defer func() { c.depth-- }()
	v := vValid
	count := 0
	i, more := c.open(i, ']')
	for more {
		var m *fnode
		if count < len(n.prefix) {
			m = n.prefix[count]
		} else {
			m = n.items
		}
		count++
		var end int
		if m != nil {
			var mv verdict
			end, mv = c.value(m, i)
			v = and(v, mv)
		} else {
			end = c.skip(c.ws(i))
		}
		if end < 0 {
			return -1, vUnknown
		}
		if i, more = c.next(end, ']'); i < 0 {
			return -1, vUnknown
		}
	}
	if outside(count, n.minItems, n.maxItems) {
		return i, vInvalid
	}
	return i, v
}
