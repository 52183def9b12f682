package schema

import (
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/wsgate/wsgate/internal/truncate"
)

// Bounds on what a Violation may carry from the instance: key names appear in Path
// (they locate the error) but each is cut to MaxSegment bytes and the whole pointer to
// MaxPath bytes, so a reply never echoes more than a short prefix of client data.
const (
	MaxSegment = 32
	MaxPath    = 256
)

// Violation says where a message breaks its schema and how, in words safe to send
// back to the client.
type Violation struct {
	// Path is a JSON pointer (RFC 6901) to the offending value, "" for the whole message.
	Path string
	// Message is short and written by this package; it never quotes instance values.
	Message string
}

func (v *Violation) Error() string {
	if v.Path == "" {
		return "schema: " + v.Message
	}
	return "schema: " + v.Path + ": " + v.Message
}

// violationOf picks the most specific leaf of the error tree: the one deepest in the
// instance; among equals (jsonschema visits object members in map order), the one
// with the smallest pointer, then message, so that a message always gets the same
// reply.
func violationOf(ve *jsonschema.ValidationError) *Violation {
	var best *Violation
	bestDepth := -1
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			d := len(e.InstanceLocation)
			if d < bestDepth {
				return
			}
			loc := e.InstanceLocation
			msg := describe(e.ErrorKind, &loc)
			v := &Violation{Path: pointer(loc), Message: msg}
			if d > bestDepth || v.Path < best.Path || v.Path == best.Path && v.Message < best.Message {
				best, bestDepth = v, d
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	// The tree mirrors the schema, whose depth is bounded by its author, not the client.
	walk(ve)
	if best == nil {
		loc := ve.InstanceLocation
		return &Violation{Path: pointer(loc), Message: describe(ve.ErrorKind, &loc)}
	}
	return best
}

// pointAt extends loc (without writing into its backing array, which other
// paths share) with the first of names, the property an error is about.
func pointAt(loc *[]string, names []string) {
	if len(names) > 0 {
		*loc = append((*loc)[:len(*loc):len(*loc)], names[0])
	}
}

// describe words an error kind. For errors about a named property it extends loc so
// the path points at that property.
func describe(k jsonschema.ErrorKind, loc *[]string) string {
	switch k := k.(type) {
	case *kind.Type:
		return "expected " + strings.Join(k.Want, " or ") + ", got " + k.Got
	case *kind.Required:
		pointAt(loc, k.Missing)
		return "missing required property"
	case *kind.AdditionalProperties:
		if len(k.Properties) > 0 {
			// The list is in map order: name the smallest, for a stable reply.
			pointAt(loc, []string{slices.Min(k.Properties)})
		}
		return "unexpected property"
	case *kind.DependentRequired:
		pointAt(loc, k.Missing)
		return "missing dependent property"
	case *kind.Dependency:
		pointAt(loc, k.Missing)
		return "missing dependent property"
	case *kind.PropertyNames:
		return "property name not allowed"
	case *kind.Const, *kind.Enum:
		return "value not allowed"
	case *kind.MaxLength:
		return "longer than " + strconv.Itoa(k.Want) + " characters"
	case *kind.MinLength:
		return "shorter than " + strconv.Itoa(k.Want) + " characters"
	case *kind.Pattern:
		return "does not match the required pattern"
	case *kind.Format:
		return "not a valid " + k.Want
	case *kind.MaxItems:
		return "more than " + strconv.Itoa(k.Want) + " items"
	case *kind.MinItems:
		return "fewer than " + strconv.Itoa(k.Want) + " items"
	case *kind.MaxProperties:
		return "more than " + strconv.Itoa(k.Want) + " properties"
	case *kind.MinProperties:
		return "fewer than " + strconv.Itoa(k.Want) + " properties"
	case *kind.UniqueItems:
		return "items are not unique"
	case *kind.Minimum:
		return "must be >= " + ratString(k.Want)
	case *kind.Maximum:
		return "must be <= " + ratString(k.Want)
	case *kind.ExclusiveMinimum:
		return "must be > " + ratString(k.Want)
	case *kind.ExclusiveMaximum:
		return "must be < " + ratString(k.Want)
	case *kind.MultipleOf:
		return "must be a multiple of " + ratString(k.Want)
	case *kind.FalseSchema:
		return "not allowed"
	case *kind.OneOf, *kind.AnyOf, *kind.AllOf, *kind.Not:
		return "does not match the allowed forms"
	}
	if kp := k.KeywordPath(); len(kp) > 0 {
		return "fails " + kp[len(kp)-1]
	}
	return "invalid value"
}

// ratString prints a schema bound (not instance data).
func ratString(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	s := r.FloatString(6)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// pointer renders tokens as an RFC 6901 pointer, each token cut to MaxSegment bytes
// and the whole to MaxPath bytes (at rune boundaries; a cut path ends in "/…").
func pointer(tokens []string) string {
	if len(tokens) == 0 {
		return ""
	}
	var b strings.Builder
	for _, t := range tokens {
		t = truncate.UTF8(t, MaxSegment)
		escaped := len(t) + strings.Count(t, "~") + strings.Count(t, "/")
		if b.Len()+1+escaped > MaxPath-len("/…") {
			b.WriteString("/…")
			break
		}
		b.WriteByte('/')
		for i := 0; i < len(t); i++ {
			switch t[i] {
			case '~':
				b.WriteString("~0")
			case '/':
				b.WriteString("~1")
			default:
				b.WriteByte(t[i])
			}
		}
	}
	return b.String()
}
