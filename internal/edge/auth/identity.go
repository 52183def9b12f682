package auth

import "time"

// Identity sources, as stored in [Identity.Source].
const (
	IdentitySourceJWT     = "jwt"
	IdentitySourceMTLS    = "mtls"
	IdentitySourceJWTMTLS = "jwt+mtls"
	IdentitySourceTicket  = "ticket"
)

// Identity is who a connection is, as established at the handshake. It is a
// plain value, serialisable as JSON (the ticket package stores it that way).
type Identity struct {
	// Subject is the stable id of the principal (the JWT subject claim or the
	// certificate identity). Never empty for an Identity returned by this
	// package.
	Subject string `json:"sub"`
	// Claims are all claims of the token. Numbers are json.Number so that
	// large integer ids survive unchanged. Nil for pure mTLS identities.
	Claims map[string]any `json:"claims,omitempty"`
	// ExpiresAt bounds the connection's authority (token exp or certificate
	// NotAfter). A ticket never extends it.
	ExpiresAt time.Time `json:"exp"`
	// IssuedAt is the token's iat, zero when absent.
	IssuedAt time.Time `json:"iat,omitzero"`
	// Source is one of "jwt", "mtls", "jwt+mtls", "ticket".
	Source string `json:"source"`
	// CertSubject is the client certificate's subject DN when mTLS was used.
	CertSubject string `json:"cert_subject,omitempty"`
	// KeyThumbprint is the token's cnf.jkt (RFC 9449 proof-of-possession key
	// thumbprint) when present.
	KeyThumbprint string `json:"jkt,omitempty"`
}

// Tier returns the string value of the given claim, typically a plan or
// quota tier ("free", "pro") that picks limits. It is "" when the claim is
// absent or not a string, so callers fall back to their default tier.
func (id Identity) Tier(claim string) string {
	s, _ := id.String(claim)
	return s
}

// String returns claim as a string; ok is false when it is absent or not a
// string.
func (id Identity) String(claim string) (s string, ok bool) {
	s, ok = id.Claims[claim].(string)
	return s, ok
}

// Strings returns claim as a list of strings. A single string is returned as
// a one-element list (as JWT does for aud); a list containing any non-string
// yields ok=false rather than a partial list, so an authorisation decision is
// never made on half a claim.
func (id Identity) Strings(claim string) (list []string, ok bool) {
	switch v := id.Claims[claim].(type) {
	case string:
		return []string{v}, true
	case []string:
		return append([]string(nil), v...), true
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, isStr := e.(string)
			if !isStr {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	default:
		return nil, false
	}
}

// HasString reports whether claim equals want or, for a list claim, contains
// it (e.g. HasString("roles", "admin")).
func (id Identity) HasString(claim, want string) bool {
	list, ok := id.Strings(claim)
	if !ok {
		return false
	}
	for _, s := range list {
		if s == want {
			return true
		}
	}
	return false
}

// Expired reports whether the identity's authority has ended at now. A zero
// ExpiresAt never expires (it is only zero for hand-built identities).
func (id Identity) Expired(now time.Time) bool {
	return !id.ExpiresAt.IsZero() && !now.Before(id.ExpiresAt)
}

// cnfString reads cnf.<member> as a string ("" when absent).
func cnfString(claims map[string]any, member string) string {
	cnf, ok := claims["cnf"].(map[string]any)
	if !ok {
		return ""
	}
	s, _ := cnf[member].(string)
	return s
}
