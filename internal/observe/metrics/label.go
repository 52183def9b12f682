package metrics

import (
	"sync"
	"sync/atomic"
)

// Other replaces label values beyond a bound or outside a known set.
const Other = "other"

// maxLabelLen caps a label value; longer values are not names but payload.
const maxLabelLen = 64

// labelBound admits the first max distinct well-formed values of a label and
// maps every later one to Other.
type labelBound struct {
	mu   sync.RWMutex
	seen map[string]struct{}
	max  int
}

func newLabelBound(max int, preset ...string) *labelBound {
	b := &labelBound{seen: make(map[string]struct{}, len(preset)), max: max}
	for _, v := range preset {
		b.seen[v] = struct{}{}
	}
	return b
}

func (b *labelBound) value(v string) string {
	if v == "" {
		return "none"
	}
	b.mu.RLock()
	_, ok := b.seen[v]
	b.mu.RUnlock()
	if ok {
		return v
	}
	if !wellFormed(v) {
		return Other
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.seen[v]; ok {
		return v
	}
	if len(b.seen) >= b.max {
		return Other
	}
	b.seen[v] = struct{}{}
	return v
}

// fixedSet maps values outside a fixed set to Other.
type fixedSet map[string]struct{}

func newFixedSet(vs ...string) fixedSet {
	s := make(fixedSet, len(vs))
	for _, v := range vs {
		s[v] = struct{}{}
	}
	return s
}

func (s fixedSet) value(v string) string {
	if _, ok := s[v]; ok {
		return v
	}
	return Other
}

// knownSet is a replaceable fixedSet (message types change on reload).
type knownSet struct {
	p     atomic.Pointer[fixedSet]
	bound *labelBound // used until SetKnownTypes is called
}

func (k *knownSet) value(v string) string {
	if s := k.p.Load(); s != nil {
		return s.value(v)
	}
	return k.bound.value(v)
}

// wellFormed admits short names of letters, digits and _ . : / -.
func wellFormed(v string) bool {
	if len(v) > maxLabelLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == ':' || c == '/' || c == '-') {
			return false
		}
	}
	return true
}
