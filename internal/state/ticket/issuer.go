package ticket

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/edge/auth"
)

// DefaultTTL is how long an issued ticket lives unless Issuer.TTL says
// otherwise: long enough for a page to dial right after fetching it.
const DefaultTTL = 30 * time.Second

// ticketBytes of randomness make a ticket unguessable.
const ticketBytes = 32

// Len is the length of every ticket string (unpadded base64url of 32 bytes).
const Len = 43

// ErrMalformed means a presented ticket is not of the form Issue produces;
// the store was not consulted. Treat it like ErrNotFound towards the client.
var ErrMalformed = errors.New("ticket: malformed")

// ErrUnavailable wraps a store failure during Redeem (Redis unreachable): the
// ticket may well be valid, so the client should retry later rather than be
// told it is bad (the guard answers 503).
var ErrUnavailable = errors.New("ticket: store unavailable")

// Issuer issues and redeems tickets over a Store. The zero TTL means
// DefaultTTL; the zero Now means time.Now.
type Issuer struct {
	Store Store
	TTL   time.Duration
	Now   func() time.Time
}

// NewIssuer returns an Issuer over store with the given TTL (0 = default).
func NewIssuer(store Store, ttl time.Duration) *Issuer {
	return &Issuer{Store: store, TTL: ttl}
}

func (i *Issuer) now() time.Time {
	if i.Now != nil {
		return i.Now()
	}
	return time.Now()
}

// Issue stores id under a fresh ticket. The ticket lives TTL, or less when
// the identity expires sooner, so a ticket never outlives its token.
func (i *Issuer) Issue(ctx context.Context, id auth.Identity) (ticket string, expires time.Time, err error) {
	if i.Store == nil {
		return "", time.Time{}, errors.New("ticket: issuer has no store")
	}
	if id.Subject == "" {
		return "", time.Time{}, errors.New("ticket: identity has no subject")
	}
	now := i.now()
	if id.Expired(now) {
		return "", time.Time{}, errors.New("ticket: identity already expired")
	}
	ttl := i.TTL
	defaults.Positive(&ttl, DefaultTTL)
	if !id.ExpiresAt.IsZero() && id.ExpiresAt.Sub(now) < ttl {
		ttl = id.ExpiresAt.Sub(now)
	}
	payload, err := json.Marshal(id)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("ticket: encode identity: %w", err)
	}
	b := make([]byte, ticketBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it aborts the process instead).
	ticket = base64.RawURLEncoding.EncodeToString(b)
	if err := i.Store.Put(ctx, ticket, payload, ttl); err != nil {
		return "", time.Time{}, fmt.Errorf("ticket: issue: %w", err)
	}
	return ticket, now.Add(ttl), nil
}

// Redeem consumes ticket and returns the identity it was issued for, with
// Source "ticket" and its original ExpiresAt. A second Redeem of the same
// ticket, or one after expiry, returns ErrNotFound; a string that cannot be
// a ticket returns ErrMalformed without touching the store.
func (i *Issuer) Redeem(ctx context.Context, ticket string) (auth.Identity, error) {
	if !ValidFormat(ticket) {
		return auth.Identity{}, ErrMalformed
	}
	if i.Store == nil {
		return auth.Identity{}, errors.New("ticket: issuer has no store")
	}
	payload, err := i.Store.Take(ctx, ticket)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return auth.Identity{}, ErrNotFound
		}
		return auth.Identity{}, fmt.Errorf("ticket: redeem: %w: %w", ErrUnavailable, err)
	}
	var id auth.Identity
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber() // claims keep json.Number, as the verifier produces them
	if err := dec.Decode(&id); err != nil {
		return auth.Identity{}, fmt.Errorf("ticket: decode identity: %w", err)
	}
	if id.Subject == "" {
		return auth.Identity{}, errors.New("ticket: stored identity has no subject")
	}
	if id.Expired(i.now()) {
		return auth.Identity{}, ErrNotFound
	}
	id.Source = auth.IdentitySourceTicket
	return id, nil
}

// ValidFormat reports whether s has the exact length and alphabet of a
// ticket (unpadded base64url). Checked before any store lookup so junk
// never reaches the store (or Redis).
func ValidFormat(s string) bool {
	if len(s) != Len {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
