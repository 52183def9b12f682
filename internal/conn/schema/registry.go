package schema

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/wsgate/wsgate/internal/readfile"
)

//go:embed builtin/*.json
var builtinFS embed.FS

// BaseURL is the location every schema of a Registry is compiled at: type t lives at
// BaseURL + t + ".json". Relative references such as "defs.json#/$defs/id" resolve
// against it.
const BaseURL = "https://schemas.wsgate.invalid/"

// DefsName is the resource name of the shared definitions; it is not a message type.
const DefsName = "defs"

// maxSchemaFile bounds one schema file read from Options.Dir.
const maxSchemaFile = 1 << 20

// typeName is what a message type (and so a schema file name) may look like.
var typeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)

// ErrUnknownType is returned by [Registry.Validate] for a type without a schema.
var ErrUnknownType = errors.New("schema: unknown message type")

// Options selects the schemas of a Registry. The zero value gives the built-ins only.
type Options struct {
	// Dir, if set, is a directory of "<type>.json" files (draft 2020-12 unless the file
	// says otherwise with "$schema"). Files override built-ins of the same type; other
	// files and subdirectories are ignored. A missing directory is an error.
	Dir string
	// Inline maps a type to its schema text; it overrides both Dir and the built-ins.
	Inline map[string]string
	// NoBuiltins leaves the built-in message schemas out (the shared "defs.json" is
	// still available for references). Only the types of Dir and Inline are known then.
	NoBuiltins bool
}

// Schema is the compiled schema of one message type.
type Schema struct {
	typ  string
	sch  *jsonschema.Schema
	fast *fnode // nil when the schema uses what the fast validator does not model
}

// Type is the message type the schema is registered for. The string is shared by
// every lookup, so callers may keep it without copying.
func (s *Schema) Type() string { return s.typ }

// Accepts reports whether the fast validator proves data, one JSON text, valid
// against the schema, without decoding it. false means "not proved": the caller must
// decode data and call Validate, which decides (and words the error). A true answer
// agrees with Validate (FuzzFastValidatorAgreesWithJSONSchema checks it).
//
// data must be what a strict parser accepted: RFC 8259 JSON, valid UTF-8, no lone
// surrogate escapes and no duplicate keys (the pipeline's scanner checks all of it);
// on other input the answer is meaningless, though Accepts never panics.
func (s *Schema) Accepts(data []byte) bool {
	if s.fast == nil {
		return false
	}
	c := cursor{data: data}
	end, v := c.value(s.fast, 0)
	return v == vValid && end >= 0 && c.ws(end) == len(data)
}

// FastPath reports whether the schema has a fast validator (see Accepts).
func (s *Schema) FastPath() bool { return s.fast != nil }

// Validate checks v, a value as produced by encoding/json with UseNumber (maps,
// slices, strings, json.Number, bool, nil), and returns nil or a *Violation.
func (s *Schema) Validate(v any) *Violation {
	err := s.sch.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		return violationOf(ve)
	}
	return &Violation{Message: "invalid message"}
}

// Registry maps message types to compiled schemas. It is immutable after New.
type Registry struct {
	byType map[string]*Schema
	types  []string
}

// New compiles a Registry from the built-ins, opts.Dir and opts.Inline. Any schema that
// does not parse or compile is an error naming its type; nothing is half-loaded.
func New(opts Options) (*Registry, error) {
	docs := map[string][]byte{}
	origin := map[string]string{}
	entries, err := fs.ReadDir(builtinFS, "builtin")
	if err != nil {
		return nil, fmt.Errorf("schema: read built-ins: %w", err)
	}
	for _, e := range entries {
		typ := strings.TrimSuffix(e.Name(), ".json")
		if opts.NoBuiltins && typ != DefsName {
			continue
		}
		b, err := builtinFS.ReadFile("builtin/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("schema: read built-in %s: %w", typ, err)
		}
		docs[typ], origin[typ] = b, "built-in"
	}
	if opts.Dir != "" {
		if err := readDir(opts.Dir, docs, origin); err != nil {
			return nil, err
		}
	}
	for typ, text := range opts.Inline {
		if !typeName.MatchString(typ) {
			return nil, fmt.Errorf("schema: inline schema: invalid type name %q", typ)
		}
		docs[typ], origin[typ] = []byte(text), "inline"
	}

	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	names := make([]string, 0, len(docs))
	for typ := range docs {
		names = append(names, typ)
	}
	sort.Strings(names)
	for _, typ := range names {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(docs[typ]))
		if err != nil {
			return nil, fmt.Errorf("schema: %s schema %q: %w", origin[typ], typ, err)
		}
		if err := c.AddResource(BaseURL+typ+".json", doc); err != nil {
			return nil, fmt.Errorf("schema: %s schema %q: %w", origin[typ], typ, err)
		}
	}
	r := &Registry{byType: make(map[string]*Schema, len(names))}
	for _, typ := range names {
		if typ == DefsName {
			continue
		}
		sch, err := c.Compile(BaseURL + typ + ".json")
		if err != nil {
			return nil, fmt.Errorf("schema: compile %s schema %q: %w", origin[typ], typ, err)
		}
		// Schemas the fast validator does not model simply go without it.
		fast, _ := compileFast(sch)
		r.byType[typ] = &Schema{typ: typ, sch: sch, fast: fast}
		r.types = append(r.types, typ)
	}
	return r, nil
}

func readDir(dir string, docs map[string][]byte, origin map[string]string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("schema: read directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".json") {
			continue
		}
		typ := strings.TrimSuffix(name, ".json")
		if !typeName.MatchString(typ) {
			return fmt.Errorf("schema: %s: invalid type name %q", filepath.Join(dir, name), typ)
		}
		b, err := readfile.Bounded(filepath.Join(dir, name), maxSchemaFile)
		if err != nil {
			return fmt.Errorf("schema: %w", err)
		}
		docs[typ], origin[typ] = b, "file"
	}
	return nil
}

// Lookup returns the schema of typ.
func (r *Registry) Lookup(typ string) (*Schema, bool) {
	s, ok := r.byType[typ]
	return s, ok
}

// LookupBytes is Lookup for a type held as bytes; it does not allocate.
func (r *Registry) LookupBytes(typ []byte) (*Schema, bool) {
	s, ok := r.byType[string(typ)]
	return s, ok
}

// Types lists the known message types, sorted. The caller must not modify it.
func (r *Registry) Types() []string { return r.types }

// Validate validates v against the schema of typ. It returns ErrUnknownType for a type
// without a schema and a *Violation when v does not conform.
func (r *Registry) Validate(typ string, v any) error {
	s, ok := r.byType[typ]
	if !ok {
		return ErrUnknownType
	}
	if viol := s.Validate(v); viol != nil {
		return viol
	}
	return nil
}

// noLoader refuses every URL: all schemas are added as resources up front.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema: %q is not in the registry (remote and file references are disabled)", url)
}
