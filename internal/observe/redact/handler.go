package redact

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
)

// Handler is a slog.Handler that masks secrets before the inner handler sees
// a record.
//
// Attributes bound with WithAttrs are masked once, when bound: JWTs, URL
// queries and sensitive keys are always caught, but a secret registered with
// Add after the binding is not. Bind per-connection loggers after the
// connection's credentials are registered.
type Handler struct {
	inner slog.Handler
	r     *Redactor
}

// NewHandler wraps inner so that every message and attribute is redacted by r.
func NewHandler(inner slog.Handler, r *Redactor) *Handler {
	return &Handler{inner: inner, r: r}
}

// Enabled defers to the inner handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle redacts the record's message and attributes, then passes it on.
func (h *Handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.r.Attr(a))
		return true
	})
	if err := h.inner.Handle(ctx, out); err != nil {
		return fmt.Errorf("redact: inner handler: %w", err)
	}
	return nil
}

// WithAttrs redacts attrs now and binds them to the inner handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.r.Attr(a)
	}
	return &Handler{inner: h.inner.WithAttrs(red), r: h.r}
}

// WithGroup defers to the inner handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), r: h.r}
}

// Attr returns a with its value redacted: masked entirely under a sensitive
// key, query-masked under a URL-ish key, secret- and JWT-masked otherwise.
// Groups are redacted recursively and LogValuers resolved first, so a value
// cannot smuggle a secret through a lazy String method.
func (r *Redactor) Attr(a slog.Attr) slog.Attr {
	return r.attr(a, 0)
}

// maxDepth stops a pathological self-nesting LogValuer.
const maxDepth = 16

func (r *Redactor) attr(a slog.Attr, depth int) slog.Attr {
	v := a.Value.Resolve()
	if SensitiveKey(a.Key) && v.Kind() != slog.KindGroup {
		if v.Kind() == slog.KindString && v.String() == "" {
			return slog.String(a.Key, "")
		}
		return slog.String(a.Key, Mask)
	}
	switch v.Kind() {
	case slog.KindString:
		s := v.String()
		red := r.String(s)
		if URLKey(a.Key) {
			red = MaskQuery(red)
		}
		if red == s {
			return slog.Attr{Key: a.Key, Value: v}
		}
		return slog.String(a.Key, red)
	case slog.KindGroup:
		if depth >= maxDepth {
			return slog.String(a.Key, Mask)
		}
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, ga := range g {
			out[i] = r.attr(ga, depth+1)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		return slog.Attr{Key: a.Key, Value: r.anyValue(a.Key, v.Any())}
	default:
		// Numbers, bools, durations and times cannot carry a secret.
		return slog.Attr{Key: a.Key, Value: v}
	}
}

// anyValue redacts an arbitrary value. Errors, byte slices and Stringers
// become their redacted text; anything else goes through its JSON form so
// that credentials under sensitive map keys or struct fields are caught too
// (slog would otherwise print http.Header{"Authorization": ...} verbatim).
func (r *Redactor) anyValue(key string, x any) slog.Value {
	urlish := URLKey(key)
	clean := func(s string) string {
		red := r.String(s)
		if urlish {
			red = MaskQuery(red)
		}
		return red
	}
	switch t := x.(type) {
	case nil:
		return slog.AnyValue(nil)
	case error:
		return slog.StringValue(clean(t.Error()))
	case []byte:
		return slog.StringValue(clean(string(t)))
	case fmt.Stringer:
		return slog.StringValue(clean(t.String()))
	}
	b, err := json.Marshal(x)
	if err != nil {
		return slog.StringValue(clean(fmt.Sprintf("%+v", x)))
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		return slog.StringValue(clean(string(b)))
	}
	return slog.AnyValue(r.tree(key, tree, 0))
}

// Value redacts a JSON-shaped value (maps with string keys, slices, strings,
// numbers, bools): strings are masked, and values under sensitive keys are
// replaced by Mask. It returns a new value and never mutates x. Values of
// other types are converted through their JSON encoding first.
func (r *Redactor) Value(x any) any {
	switch x.(type) {
	case nil, bool, float64, float32, int, int64, int32, uint, uint64, uint32, string,
		map[string]any, []any, map[string]string, []string:
		return r.tree("", x, 0)
	}
	b, err := json.Marshal(x)
	if err != nil {
		return r.String(fmt.Sprintf("%+v", x))
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		return r.String(string(b))
	}
	return r.tree("", tree, 0)
}

// treeMap is tree for a map: keys redacted, values of sensitive keys masked.
func treeMap[V any](r *Redactor, m map[string]V, depth int) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if SensitiveKey(k) {
			out[r.String(k)] = Mask
			continue
		}
		out[r.String(k)] = r.tree(k, v, depth+1)
	}
	return out
}

func (r *Redactor) tree(key string, x any, depth int) any {
	if depth > maxDepth {
		return Mask
	}
	switch t := x.(type) {
	case string:
		red := r.String(t)
		if URLKey(key) {
			red = MaskQuery(red)
		}
		return red
	case map[string]any:
		return treeMap(r, t, depth)
	case map[string]string:
		return treeMap(r, t, depth)
	case []any:
		out := make([]any, len(t))
		for i, v := range t {
			out[i] = r.tree(key, v, depth+1)
		}
		return out
	case []string:
		out := make([]any, len(t))
		for i, v := range t {
			out[i] = r.tree(key, v, depth+1)
		}
		return out
	case nil, bool, float64, float32, int, int64, int32, uint, uint64, uint32:
		return t
	default:
		return r.Value(t)
	}
}
