package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/wsgate/wsgate/internal/conn/protocol"
)

// CredentialSource says where in the upgrade request a credential was found.
type CredentialSource string

// Credential sources, in the order Extract looks for them.
const (
	SourceBearer      CredentialSource = "bearer"      // Authorization: Bearer <token>
	SourceSubprotocol CredentialSource = "subprotocol" // Sec-WebSocket-Protocol: ..., bearer, <token> or token.<token>
	SourceCookie      CredentialSource = "cookie"      // ExtractOptions.CookieName
	SourceTicket      CredentialSource = "ticket"      // ?ticket=<one-time ticket>
	SourceQuery       CredentialSource = "query"       // ?token=<token>, only with AllowQueryToken
)

// SubprotocolMarker is the Sec-WebSocket-Protocol entry announcing that the
// next entry is a bearer token (browsers cannot set Authorization on a
// WebSocket, so they offer ["bearer", token, "app.v1"]).
const SubprotocolMarker = "bearer"

// subprotocolTokenPrefix is the other browser form: "token.<jwt>".
const subprotocolTokenPrefix = "token."

// Bounds on the Sec-WebSocket-Protocol header.
const (
	MaxSubprotocols = 32
	// maxSubprotocolBytes lets one entry hold a whole token.
	maxSubprotocolBytes = MaxTokenBytes
)

var (
	// ErrNoCredential means the request carries no credential at all.
	ErrNoCredential = errors.New("auth: no credential")
	// ErrBadCredential means a credential-carrying header or parameter is
	// malformed, ambiguous or disallowed. Refuse the upgrade.
	ErrBadCredential = errors.New("auth: malformed credential")
	// ErrAmbiguousCredential (which also matches ErrBadCredential) means the
	// request carries two credentials where one is read: two Authorization
	// headers, or an Authorization token and a token subprotocol entry.
	// Silently picking one would let a proxy and wsgate disagree on who the
	// client is; refuse the request as malformed (400).
	ErrAmbiguousCredential = fmt.Errorf("%w: ambiguous", ErrBadCredential)
)

// Credential is the one credential found in a request.
type Credential struct {
	Source CredentialSource
	// Value is the token or ticket. Never log it.
	Value string
	// EchoProtocol is set for the subprotocol marker form only: it is the
	// marker as the client spelled it, which the server may select as the
	// response subprotocol when it picks no application protocol. Browsers
	// fail a handshake that offered subprotocols and got none back, and the
	// token entry itself must never be echoed. The "token.<jwt>" form has no
	// safe entry to echo, so such clients must also offer an app protocol.
	EchoProtocol string
}

// ExtractOptions says which optional credential carriers are enabled.
type ExtractOptions struct {
	// CookieName, when set, is the cookie read for a token.
	CookieName string
	// AllowQueryToken enables ?token=. Off by default: URLs end up in proxy
	// and access logs, so prefer tickets there.
	AllowQueryToken bool
}

// Extract finds the request's credential, looking in order at the
// Authorization bearer, Sec-WebSocket-Protocol, the cookie, ?ticket= and
// (only with AllowQueryToken) ?token=. appProtocols is the client's offered
// subprotocol list with every token-carrying entry removed: pick the
// response subprotocol from it and never from the raw header.
//
// A request with no credential returns ErrNoCredential; a malformed,
// duplicated or disallowed one returns an error wrapping ErrBadCredential.
// appProtocols is returned whenever the header itself parsed.
func Extract(r *http.Request, o ExtractOptions) (cred Credential, appProtocols []string, err error) {
	protos, err := parseSubprotocols(r.Header.Values("Sec-WebSocket-Protocol"))
	if err != nil {
		return Credential{}, nil, err
	}
	appProtocols, subCred, err := splitTokenProtocols(protos)
	if err != nil {
		return Credential{}, nil, err
	}

	if auth := r.Header.Values("Authorization"); len(auth) > 0 {
		if len(auth) > 1 {
			return Credential{}, appProtocols, fmt.Errorf("%w: more than one Authorization header", ErrAmbiguousCredential)
		}
		if subCred.Value != "" {
			return Credential{}, appProtocols, fmt.Errorf("%w: both an Authorization header and a token subprotocol", ErrAmbiguousCredential)
		}
		scheme, tok, ok := strings.Cut(strings.TrimSpace(auth[0]), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return Credential{}, appProtocols, fmt.Errorf("%w: Authorization must use the Bearer scheme", ErrBadCredential)
		}
		if err := checkCredential("bearer token", strings.TrimSpace(tok)); err != nil {
			return Credential{}, appProtocols, err
		}
		return Credential{Source: SourceBearer, Value: strings.TrimSpace(tok)}, appProtocols, nil
	}
	if subCred.Value != "" {
		return subCred, appProtocols, nil
	}
	if o.CookieName != "" {
		cookies := r.CookiesNamed(o.CookieName)
		switch {
		case len(cookies) > 1:
			// Two cookies of one name is how cookie tossing from a sibling
			// domain shows up; refuse instead of guessing.
			return Credential{}, appProtocols, fmt.Errorf("%w: cookie %q sent more than once", ErrBadCredential, o.CookieName)
		case len(cookies) == 1 && cookies[0].Value != "":
			if err := checkCredential("cookie", cookies[0].Value); err != nil {
				return Credential{}, appProtocols, err
			}
			return Credential{Source: SourceCookie, Value: cookies[0].Value}, appProtocols, nil
		}
	}
	var q url.Values
	if r.URL != nil && r.URL.RawQuery != "" {
		if q, err = url.ParseQuery(r.URL.RawQuery); err != nil {
			return Credential{}, appProtocols, fmt.Errorf("%w: bad query string", ErrBadCredential)
		}
	}
	if v, ok, err := single(q, "ticket"); err != nil || ok {
		if err != nil {
			return Credential{}, appProtocols, err
		}
		return Credential{Source: SourceTicket, Value: v}, appProtocols, nil
	}
	if _, present := q["token"]; present {
		if !o.AllowQueryToken {
			return Credential{}, appProtocols, fmt.Errorf("%w: ?token= is disabled (URLs are logged); use a ticket, a subprotocol or the Authorization header", ErrBadCredential)
		}
		v, _, err := single(q, "token")
		if err != nil {
			return Credential{}, appProtocols, err
		}
		return Credential{Source: SourceQuery, Value: v}, appProtocols, nil
	}
	return Credential{}, appProtocols, ErrNoCredential
}

// single returns the only value of q[name]; present with zero, several or a
// bad value is an error.
func single(q url.Values, name string) (string, bool, error) {
	vs, ok := q[name]
	if !ok {
		return "", false, nil
	}
	if len(vs) != 1 {
		return "", true, fmt.Errorf("%w: query parameter %q given %d times", ErrBadCredential, name, len(vs))
	}
	if err := checkCredential("query parameter "+name, vs[0]); err != nil {
		return "", true, err
	}
	return vs[0], true, nil
}

// checkCredential bounds a credential and limits it to visible ASCII, the
// alphabet of JWTs and tickets.
func checkCredential(what, v string) error {
	if v == "" {
		return fmt.Errorf("%w: empty %s", ErrBadCredential, what)
	}
	if len(v) > MaxTokenBytes {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrBadCredential, what, MaxTokenBytes)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: %s has a byte outside visible ASCII", ErrBadCredential, what)
		}
	}
	return nil
}

// parseSubprotocols splits Sec-WebSocket-Protocol header values (the header
// may repeat) into entries: comma-separated RFC 7230 tokens, whitespace
// trimmed; empty entries, non-token bytes, duplicates, too many or too long
// entries are errors.
func parseSubprotocols(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for entry := range strings.SplitSeq(v, ",") {
			entry = strings.Trim(entry, " \t")
			if entry == "" {
				return nil, fmt.Errorf("%w: empty Sec-WebSocket-Protocol entry", ErrBadCredential)
			}
			if len(out) == MaxSubprotocols {
				return nil, fmt.Errorf("%w: more than %d Sec-WebSocket-Protocol entries", ErrBadCredential, MaxSubprotocols)
			}
			if len(entry) > maxSubprotocolBytes {
				return nil, fmt.Errorf("%w: Sec-WebSocket-Protocol entry longer than %d bytes", ErrBadCredential, maxSubprotocolBytes)
			}
			for i := 0; i < len(entry); i++ {
				if !protocol.IsTokenChar(entry[i]) {
					return nil, fmt.Errorf("%w: Sec-WebSocket-Protocol entry has a byte not allowed in a token", ErrBadCredential)
				}
			}
			for _, prev := range out {
				if prev == entry {
					return nil, fmt.Errorf("%w: duplicate Sec-WebSocket-Protocol entry", ErrBadCredential)
				}
			}
			out = append(out, entry)
		}
	}
	return out, nil
}

// splitTokenProtocols separates token-carrying entries from application
// protocols. At most one token may be offered.
func splitTokenProtocols(protos []string) (app []string, cred Credential, err error) {
	for i := 0; i < len(protos); i++ {
		p := protos[i]
		var tok, echo string
		switch {
		case strings.EqualFold(p, SubprotocolMarker):
			if i+1 >= len(protos) {
				return nil, Credential{}, fmt.Errorf("%w: %q subprotocol marker without a token after it", ErrBadCredential, SubprotocolMarker)
			}
			i++
			tok, echo = protos[i], p
		case len(p) > len(subprotocolTokenPrefix) && strings.EqualFold(p[:len(subprotocolTokenPrefix)], subprotocolTokenPrefix):
			tok = p[len(subprotocolTokenPrefix):]
		default:
			app = append(app, p)
			continue
		}
		if cred.Value != "" {
			return nil, Credential{}, fmt.Errorf("%w: more than one token in Sec-WebSocket-Protocol", ErrBadCredential)
		}
		cred = Credential{Source: SourceSubprotocol, Value: tok, EchoProtocol: echo}
	}
	// A token also offered as a plain entry could be selected and echoed.
	if cred.Value != "" && slices.Contains(app, cred.Value) {
		return nil, Credential{}, fmt.Errorf("%w: token also offered as a subprotocol", ErrBadCredential)
	}
	return app, cred, nil
}

// RedactURL renders u for logs with every query value replaced by REDACTED
// (tickets and tokens travel there) and any userinfo password masked.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	if c.RawQuery != "" {
		q, err := url.ParseQuery(c.RawQuery)
		if err != nil {
			c.RawQuery = "REDACTED"
		} else {
			for k, vs := range q {
				for i := range vs {
					vs[i] = "REDACTED"
				}
				q[k] = vs
			}
			c.RawQuery = q.Encode()
		}
	}
	c.Fragment, c.RawFragment = "", ""
	return c.Redacted()
}
