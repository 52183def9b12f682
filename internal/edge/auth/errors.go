package auth

import (
	"errors"
	"fmt"
)

// Reasons a token is refused; [Reason] returns exactly one of these. They
// are stable, low-cardinality labels for metrics and audit logs.
const (
	ReasonMalformed       = "malformed"
	ReasonAlgNotAllowed   = "alg_not_allowed"
	ReasonUnknownKey      = "unknown_key"
	ReasonBadSignature    = "bad_signature"
	ReasonExpired         = "expired"
	ReasonNotYetValid     = "not_yet_valid"
	ReasonIssuedInFuture  = "issued_in_future"
	ReasonMissingExp      = "missing_exp"
	ReasonLifetimeTooLong = "lifetime_too_long"
	ReasonWrongIssuer     = "wrong_issuer"
	ReasonWrongAudience   = "wrong_audience"
	ReasonMissingSubject  = "missing_subject"
	ReasonJWKSUnavailable = "jwks_unavailable"
	// ReasonWrongTokenType: a subscription token used as an access token, or
	// an access token used as a subscription grant (see TypeClaim).
	ReasonWrongTokenType = "wrong_token_type"
)

// Error is a refused token. Reason is one of the Reason* constants; Err
// carries the detail (never the token itself) for the audit log. Clients
// should only ever be told that authentication failed.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return "auth: " + e.Reason
	}
	return "auth: " + e.Reason + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Reason returns the Reason* label of err: "" for nil, the *Error's Reason
// when err wraps one, and "malformed" for any other error so that labels stay
// within the documented set.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var ae *Error
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return ReasonMalformed
}

func newErr(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}
