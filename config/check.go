package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The checks here run on the raw YAML document and the raw environment, before
// decoding, so that every error can say where it is (file:line:column or the
// variable's name), which key, what value, and what was expected, and so that
// all of them are reported at once. Decoding afterwards cannot fail on types.

var durationType = reflect.TypeFor[time.Duration]()

// positions maps a key path ("limits.max_message_bytes", "auth.keys[0]") to where
// it was set ("wsgate.yaml:12:3" or "environment variable WSGATE_…"), so that
// Validate's semantic errors can point at the line too.
type positions map[string]string

// checkYAML parses data (the file named file) and checks every key and value
// against the Config type. It returns the parse error alone when the document
// is not YAML.
func checkYAML(file string, data []byte, pos positions) []error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return []error{fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	if len(doc.Content) == 0 {
		return nil // an empty file is the defaults
	}
	c := &checker{file: file, pos: pos}
	c.node(doc.Content[0], reflect.TypeFor[Config](), "")
	return c.errs
}

type checker struct {
	file string
	pos  positions
	errs []error
}

func (c *checker) at(n *yaml.Node) string { return fmt.Sprintf("%s:%d:%d", c.file, n.Line, n.Column) }

func (c *checker) errf(n *yaml.Node, path, format string, args ...any) {
	what := path
	if what == "" {
		what = "the document"
	}
	c.errs = append(c.errs, fmt.Errorf("%s: %s: %s", c.at(n), what, fmt.Sprintf(format, args...)))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (c *checker) node(n *yaml.Node, t reflect.Type, path string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if path != "" && c.pos != nil {
		c.pos[path] = c.at(n)
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "key:" with no value keeps the default
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.errf(n, path, "got %s, expected a mapping of %s keys", describe(n), sectionName(path))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fieldByKey(t, k.Value)
			if !ok {
				c.errf(k, join(path, k.Value), "unknown key%s", suggest(t, k.Value, path))
				continue
			}
			c.node(v, f.Type, join(path, k.Value))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.errf(n, path, "got %s, expected a mapping (name: value)", describe(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.node(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
		}
	case reflect.Slice:
		switch {
		case n.Kind == yaml.SequenceNode:
			for i, e := range n.Content {
				c.node(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
			}
		case n.Kind == yaml.ScalarNode && t.Elem().Kind() == reflect.String:
			// "a,b" is a list too (the environment's form).
		default:
			c.errf(n, path, "got %s, expected a list", describe(n))
		}
	default:
		if n.Kind != yaml.ScalarNode {
			c.errf(n, path, "got %s, expected %s", describe(n), typeName(t))
			return
		}
		if msg := checkScalar(t, n.Value, n.Tag); msg != "" {
			c.errf(n, path, "%s", msg)
		}
	}
}

// checkScalar says what is wrong with value for a field of type t ("" if
// nothing). tag is the YAML tag ("!!str" for the environment).
func checkScalar(t reflect.Type, value, tag string) string {
	bad := func(expected, hint string) string {
		s := fmt.Sprintf("got %q, expected %s", value, expected)
		if hint != "" {
			s += " (" + hint + ")"
		}
		return s
	}
	if t == durationType {
		if tag == "!!int" || tag == "!!float" {
			if f, err := strconv.ParseFloat(value, 64); err == nil && f == 0 {
				return ""
			}
			return bad("a duration", "a number alone has no unit: write e.g. "+value+"s or "+value+"ms")
		}
		if _, err := time.ParseDuration(value); err != nil {
			return bad("a duration", "e.g. 500ms, 30s, 5m, 1h")
		}
		return ""
	}
	switch t.Kind() {
	case reflect.String:
		return ""
	case reflect.Int, reflect.Int64, reflect.Int32:
		if _, err := strconv.ParseInt(value, 0, 64); err == nil {
			return ""
		}
		if f, err := strconv.ParseFloat(value, 64); err == nil && f == float64(int64(f)) {
			return ""
		}
		return bad("an integer", "no units or suffixes: 16384, not 16k")
	case reflect.Float64, reflect.Float32:
		if _, err := strconv.ParseFloat(value, 64); err != nil {
			return bad("a number", "")
		}
	case reflect.Bool:
		if _, err := strconv.ParseBool(value); err != nil {
			return bad("true or false", "")
		}
	}
	return ""
}

// fieldByKey finds the field a configuration key sets (case-insensitively, as the
// decoder matches).
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if tag == "" || tag == "-" {
			continue
		}
		if strings.EqualFold(tag, key) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func keysOf(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("koanf"); tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	sort.Strings(keys)
	return keys
}

// suggest names the closest known key, or lists the section's keys.
func suggest(t reflect.Type, key, path string) string {
	keys := keysOf(t)
	best, bestD := "", 3
	for _, k := range keys {
		if d := distance(strings.ToLower(key), k); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(": did you mean %s?", join(path, best))
	}
	return fmt.Sprintf(" in %s (known: %s; see examples/wsgate.yaml)", sectionName(path), strings.Join(keys, ", "))
}

func sectionName(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

func typeName(t reflect.Type) string {
	if t == durationType {
		return "a duration (e.g. 30s)"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Bool:
		return "true or false"
	}
	return t.String()
}

// checkEnv checks every WSGATE_* variable: that it names a configuration key and
// that its value fits the key's type. Errors name the variable, not a YAML key.
func checkEnv(environ []string, pos positions) []error {
	var errs []error
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		path := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "__", ".")
		where := "environment variable " + name
		t := reflect.TypeFor[Config]()
		segs := strings.Split(path, ".")
		ok := true
		for i, seg := range segs {
			switch t.Kind() {
			case reflect.Struct:
				f, found := fieldByKey(t, seg)
				if !found {
					errs = append(errs, fmt.Errorf("%s: names no configuration key (%s is not a key of %s%s); every %s* variable is configuration: unset it or fix its name (nested keys are joined with a double underscore, e.g. %sLIMITS__MAX_MESSAGE_BYTES)",
						where, seg, sectionName(strings.Join(segs[:i], ".")), suggest(t, seg, strings.Join(segs[:i], ".")), EnvPrefix, EnvPrefix))
					ok = false
				} else {
					t = f.Type
				}
			case reflect.Map:
				t = t.Elem()
			default:
				errs = append(errs, fmt.Errorf("%s: %s is not a section", where, strings.Join(segs[:i], ".")))
				ok = false
			}
			if !ok {
				break
			}
		}
		if !ok {
			continue
		}
		if pos != nil {
			pos[path] = where
		}
		switch t.Kind() {
		case reflect.Struct, reflect.Map:
			errs = append(errs, fmt.Errorf("%s: %s is a section; set its keys one by one (%s__KEY)", where, path, name))
		case reflect.Slice:
			if t.Elem().Kind() != reflect.String {
				errs = append(errs, fmt.Errorf("%s: %s is a list of sections; set it in the configuration file", where, path))
			}
		default:
			if msg := checkScalar(t, value, "!!str"); msg != "" {
				errs = append(errs, fmt.Errorf("%s: %s: %s", where, path, msg))
			}
		}
	}
	return errs
}
