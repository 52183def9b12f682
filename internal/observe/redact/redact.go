package redact

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
)

// Mask replaces a secret, a JWT or a sensitive attribute value.
const Mask = "[REDACTED]"

// MinSecretLen is the shortest secret Add accepts: shorter strings would match
// ordinary words and numbers and make log lines unreadable.
const MinSecretLen = 8

// DefaultMaxSecrets bounds the registry when Options.MaxSecrets is zero.
const DefaultMaxSecrets = 65536

// window is the width of the suffix every secret is indexed by; it equals
// MinSecretLen so every secret has a full window. The suffix, not the prefix,
// because tokens share prefixes (every HS256 JWT starts "eyJhbGciOiJIUzI1")
// while their ends (signatures, random tails) differ.
const window = MinSecretLen

// maxPerWindow bounds how many secrets share one 8-byte suffix, so that a
// client choosing its own tokens cannot make every log line scan a long list.
const maxPerWindow = 64

// Options tunes a Redactor.
type Options struct {
	// MaxSecrets bounds how many secrets Add remembers; the oldest is forgotten
	// first. Pinned secrets (Pin) are not counted and never forgotten. Default
	// DefaultMaxSecrets.
	MaxSecrets int
	// Now is the clock of AddFor; default time.Now. For tests.
	Now func() time.Time
}

// Redactor masks registered secrets, JWT-looking strings and URL query
// strings. The zero value is not usable; call New. A nil *Redactor still
// masks JWTs and query strings, so callers need no nil checks.
type Redactor struct {
	bits atomic.Pointer[bitset] // probe filter over the 8-byte prefixes; only ever gains bits until rebuilt

	mu       sync.RWMutex
	byPrefix map[uint64][]string // last 8 bytes -> secrets ending with them, oldest first
	set      map[string]int      // secret -> its slot in ring, or pinnedSlot
	ring     []string            // insertion order, for FIFO eviction; "" marks a removed entry
	head     int                 // next slot of ring to (over)write
	evicted  int                 // evictions since the filter was last rebuilt
	max      int
	expiry   []expiring // AddFor secrets in the order they expire (one TTL per caller)
	expHead  int        // first live entry of expiry
	now      func() time.Time
}

// pinnedSlot marks a pinned secret in Redactor.set: it has no ring slot.
const pinnedSlot = -1

type expiring struct {
	secret string
	at     time.Time
}

// New returns an empty Redactor.
func New(opts Options) *Redactor {
	defaults.Positive(&opts.MaxSecrets, DefaultMaxSecrets)
	defaults.Now(&opts.Now)
	r := &Redactor{
		byPrefix: make(map[uint64][]string),
		set:      make(map[string]int),
		max:      opts.MaxSecrets,
		now:      opts.Now,
	}
	r.bits.Store(newBitset(opts.MaxSecrets))
	return r
}

// Add registers a secret so that it is masked wherever it appears. Strings
// shorter than MinSecretLen are ignored (they cannot be told apart from
// ordinary text). When the registry is full the oldest secret is forgotten.
// Safe for concurrent use.
func (r *Redactor) Add(secret string) {
	if r == nil || len(secret) < MinSecretLen {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked()
	r.addLocked(secret)
}

// AddFor registers a secret that lives for ttl, like a one-time ticket: it is
// forgotten once ttl has passed (lazily, by a later Add or AddFor) or when
// Remove is called, whichever comes first, so short-lived credentials do not
// crowd the registry. Callers should use one ttl per kind of secret: expiry is
// checked in the order secrets were added.
func (r *Redactor) AddFor(secret string, ttl time.Duration) {
	if r == nil || len(secret) < MinSecretLen {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked()
	if _, ok := r.set[secret]; ok {
		return
	}
	if r.addLocked(secret) {
		r.expiry = append(r.expiry, expiring{secret: r.ring[r.set[secret]], at: r.now().Add(ttl)})
	}
}

// Pin registers a configured secret (a signing key, the admin token): it is
// never forgotten, neither by the registry's bound nor by many secrets sharing
// its last bytes, so no volume of run-time secrets can push it out. Pin an
// already added secret to make it permanent. Pinned secrets are not counted
// against MaxSecrets; pin only what the configuration holds.
func (r *Redactor) Pin(secret string) {
	if r == nil || len(secret) < MinSecretLen {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if slot, ok := r.set[secret]; ok {
		if slot == pinnedSlot {
			return
		}
		r.ring[slot] = ""
		r.set[secret] = pinnedSlot
		return
	}
	secret = strings.Clone(secret)
	r.set[secret] = pinnedSlot
	p := suffix(secret)
	r.byPrefix[p] = append(r.byPrefix[p], secret)
	r.bits.Load().set(p)
}

// expireLocked forgets the AddFor secrets whose time has passed.
func (r *Redactor) expireLocked() {
	if r.expHead == len(r.expiry) {
		return
	}
	now := r.now()
	for r.expHead < len(r.expiry) && !now.Before(r.expiry[r.expHead].at) {
		e := &r.expiry[r.expHead]
		if slot, ok := r.set[e.secret]; ok && slot != pinnedSlot {
			r.removeLocked(e.secret)
		}
		*e = expiring{}
		r.expHead++
	}
	switch {
	case r.expHead == len(r.expiry):
		r.expiry, r.expHead = r.expiry[:0], 0
	case r.expHead > len(r.expiry)/2:
		// Amortised: the live tail is copied once per halving.
		r.expiry = append(r.expiry[:0], r.expiry[r.expHead:]...)
		r.expHead = 0
	}
	if r.evicted > r.max/2 {
		r.rebuildLocked()
	}
}

// addLocked registers secret in the FIFO ring and reports whether it was new.
func (r *Redactor) addLocked(secret string) bool {
	if _, ok := r.set[secret]; ok {
		return false
	}
	// Go strings share memory with their source; clone so a caller's large
	// buffer is not pinned by a short secret.
	secret = strings.Clone(secret)
	slot := r.head
	if len(r.ring) < r.max {
		r.ring = append(r.ring, secret)
	} else {
		if old := r.ring[slot]; old != "" {
			r.removeLocked(old)
		}
		r.ring[slot] = secret
	}
	r.head = (r.head + 1) % r.max
	r.set[secret] = slot
	p := suffix(secret)
	if list := r.byPrefix[p]; len(list) >= maxPerWindow {
		// Many secrets sharing their last 8 bytes would make every probe
		// hit scan them all; forget the oldest unpinned one instead.
		for _, old := range list {
			if r.set[old] != pinnedSlot {
				r.removeLocked(old)
				break
			}
		}
	}
	r.byPrefix[p] = append(r.byPrefix[p], secret)
	if r.evicted > r.max/2 {
		r.rebuildLocked()
	} else {
		r.bits.Load().set(p)
	}
	return true
}

// Remove forgets a secret, e.g. when the connection that owned a token ends or
// a ticket is redeemed. Pinned secrets stay.
func (r *Redactor) Remove(secret string) {
	if r == nil || len(secret) < MinSecretLen {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if slot, ok := r.set[secret]; !ok || slot == pinnedSlot {
		return
	}
	r.removeLocked(secret)
	if r.evicted > r.max/2 {
		r.rebuildLocked()
	}
}

// Len reports how many secrets are registered.
func (r *Redactor) Len() int {
	if r == nil {
		return 0
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.set)
}

func (r *Redactor) removeLocked(secret string) {
	if slot, ok := r.set[secret]; ok && slot != pinnedSlot {
		r.ring[slot] = ""
	}
	delete(r.set, secret)
	r.evicted++
	p := suffix(secret)
	list := r.byPrefix[p]
	for i, s := range list {
		if s == secret {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.byPrefix, p)
	} else {
		r.byPrefix[p] = list
	}
}

// rebuildLocked drops the bits of forgotten secrets so the filter does not
// silt up with false positives.
func (r *Redactor) rebuildLocked() {
	b := newBitset(r.max)
	for p := range r.byPrefix {
		b.set(p)
	}
	r.bits.Store(b)
	r.evicted = 0
}

// Contains reports whether s holds a registered secret or a JWT-looking
// substring. Tests use it to prove nothing leaked.
func (r *Redactor) Contains(s string) bool {
	if _, _, ok := r.findSecret(s, 0); ok {
		return true
	}
	_, _, ok := findJWT(s, 0)
	return ok
}

// String masks registered secrets, JWT-looking substrings and the query
// strings of absolute URLs in s. It returns s itself (no allocation) when
// there is nothing to mask.
func (r *Redactor) String(s string) string {
	s = r.maskSecrets(s)
	s = maskJWTs(s)
	return maskURLQueries(s)
}

// URL masks like String and additionally treats the whole of s as a URL or
// request target: everything after the first '?' (or '#') is masked, so
// "/ws?token=x" becomes "/ws?REDACTED".
func (r *Redactor) URL(s string) string {
	s = r.String(s)
	return MaskQuery(s)
}

// MaskQuery replaces the query and fragment of a URL-ish string:
// "/p?a=b#c" -> "/p?REDACTED".
func MaskQuery(s string) string {
	i := strings.IndexAny(s, "?#")
	if i < 0 {
		return s
	}
	if strings.HasSuffix(s[i:], "REDACTED") && len(s)-i == len("?REDACTED") {
		return s
	}
	return s[:i+1] + "REDACTED"
}

func (r *Redactor) maskSecrets(s string) string {
	return maskAll(s, func(s string, from int) (int, int, bool) {
		i, n, ok := r.findSecret(s, from)
		return i, i + n, ok
	})
}

// findSecret returns the position and length of the registered secret that
// ends first in s at or after from (the longest one ending there). A secret
// starting before from is not reported.
func (r *Redactor) findSecret(s string, from int) (int, int, bool) {
	if r == nil || len(s)-from < window {
		return 0, 0, false
	}
	bits := r.bits.Load()
	for i := from; i+window <= len(s); i++ {
		p := prefix(s, i)
		if !bits.has(p) {
			continue
		}
		end := i + window
		best := 0
		r.mu.RLock()
		for _, sec := range r.byPrefix[p] {
			if len(sec) > best && end-len(sec) >= from && s[end-len(sec):end] == sec {
				best = len(sec)
			}
		}
		r.mu.RUnlock()
		if best > 0 {
			return end - best, best, true
		}
	}
	return 0, 0, false
}

func suffix(secret string) uint64 { return prefix(secret, len(secret)-window) }

func prefix(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// bitset is a one-hash Bloom filter over 8-byte prefixes, sized at ~16 bits
// per secret so a miss (the common case) rarely costs a lock.
type bitset struct {
	words []atomic.Uint64
	shift uint
}

func newBitset(maxSecrets int) *bitset {
	nbits := 1 << 10
	shift := uint(64 - 10)
	for nbits < maxSecrets*16 && nbits < 1<<24 {
		nbits <<= 1
		shift--
	}
	return &bitset{words: make([]atomic.Uint64, nbits/64), shift: shift}
}

func (b *bitset) index(p uint64) uint64 { return (p * 0x9E3779B97F4A7C15) >> b.shift }

func (b *bitset) set(p uint64) {
	i := b.index(p)
	b.words[i/64].Or(1 << (i % 64))
}

func (b *bitset) has(p uint64) bool {
	i := b.index(p)
	return b.words[i/64].Load()&(1<<(i%64)) != 0
}
