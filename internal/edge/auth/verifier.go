package auth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/internal/defaults"
)

// Defaults for Options.
const (
	DefaultJWKSRefresh    = 10 * time.Minute
	DefaultJWKSMinRefresh = 30 * time.Second
	DefaultLeeway         = 5 * time.Second
	DefaultMaxLifetime    = 24 * time.Hour
	DefaultSubjectClaim   = "sub"
	// DefaultJWKSTimeout bounds one JWKS fetch when Options.HTTPClient is nil.
	DefaultJWKSTimeout = 10 * time.Second
)

// Bounds on untrusted input.
const (
	// MaxTokenBytes is the longest token Verify looks at.
	MaxTokenBytes = 8192
	// maxKIDBytes bounds the kid header (it ends up in logs).
	maxKIDBytes = 256
	// maxSubjectBytes bounds the subject: it becomes a key for limits and bans.
	maxSubjectBytes = 1024
	// maxCandidates is how many keys a kid-less token may be tried against.
	// Each try is a signature verification, so this caps the CPU one token
	// can cost; deployments with more keys must put a kid in their tokens.
	maxCandidates = 8
)

// Options configures a Verifier. The zero value of each duration field means
// its default. At least one of Keys and JWKSURL must be set.
type Options struct {
	// Keys are static verification keys (HMAC secrets and public keys).
	Keys []Key
	// JWKSURL is fetched at start (failure is an error) and every
	// JWKSRefresh; it must be https, or http to a loopback host. Symmetric
	// ("oct") keys and keys with use other than "sig" in the set are ignored.
	JWKSURL string
	// JWKSRefresh is the periodic refresh interval (default 10m). A failed
	// refresh keeps the previous keys.
	JWKSRefresh time.Duration
	// JWKSMinRefresh is the least time between two fetches triggered by an
	// unknown kid (default 30s), so a flood of made-up kids cannot hammer the
	// identity provider.
	JWKSMinRefresh time.Duration
	// HTTPClient fetches the JWKS (default: a client with a 10s timeout).
	HTTPClient *http.Client
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audience, when set, must share at least one entry with the token's aud.
	Audience []string
	// Leeway is the clock skew tolerated for exp, nbf and iat (default 5s).
	Leeway time.Duration
	// MaxLifetime caps exp-iat (or exp-now when there is no iat); longer-lived
	// tokens are refused (default 24h).
	MaxLifetime time.Duration
	// SubjectClaim names the claim holding the subject (default "sub"). It
	// must be a non-empty string of at most 1024 bytes.
	SubjectClaim string
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
}

// withDefaults returns a copy with defaults filled in and checks the plain
// fields; keys are checked by loadKeys.
func (o Options) withDefaults() (Options, error) {
	o.Keys = slices.Clone(o.Keys)
	o.Audience = slices.Clone(o.Audience)
	for name, d := range map[string]time.Duration{
		"auth.jwks_refresh": o.JWKSRefresh, "auth.jwks_min_refresh": o.JWKSMinRefresh,
		"auth.leeway": o.Leeway, "auth.max_lifetime": o.MaxLifetime,
	} {
		if d < 0 {
			return o, fmt.Errorf("%s: must not be negative, got %s", name, d)
		}
	}
	o.JWKSRefresh = cmp.Or(o.JWKSRefresh, DefaultJWKSRefresh)
	o.JWKSMinRefresh = cmp.Or(o.JWKSMinRefresh, DefaultJWKSMinRefresh)
	o.Leeway = cmp.Or(o.Leeway, DefaultLeeway)
	o.MaxLifetime = cmp.Or(o.MaxLifetime, DefaultMaxLifetime)
	o.SubjectClaim = cmp.Or(o.SubjectClaim, DefaultSubjectClaim)
	defaults.Now(&o.Now)
	if len(o.Keys) == 0 && o.JWKSURL == "" {
		return o, errors.New("auth: no verification keys: set auth.keys or auth.jwks_url")
	}
	for i, a := range o.Audience {
		if a == "" {
			return o, fmt.Errorf("auth.audience[%d]: must not be empty", i)
		}
	}
	if o.JWKSURL != "" {
		if err := checkJWKSURL(o.JWKSURL); err != nil {
			return o, fmt.Errorf("auth.jwks_url: %w", err)
		}
	}
	return o, nil
}

func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("must be https (http is only allowed to a loopback host), got %q", u.Redacted())
		}
	default:
		return fmt.Errorf("must be an https URL, got scheme %q", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	return nil
}

// Validate checks opts as NewVerifier would, including loading the static
// keys, without fetching the JWKS. For `wsgate check`.
func (o Options) Validate() error {
	o, err := o.withDefaults()
	if err != nil {
		return err
	}
	_, err = loadKeys(o.Keys)
	return err
}

// keyring is an immutable set of verification keys.
type keyring struct {
	byKID map[string]*vkey
	all   []*vkey
}

func (r *keyring) add(k *vkey) bool {
	if k.id != "" {
		if _, dup := r.byKID[k.id]; dup {
			return false
		}
		r.byKID[k.id] = k
	}
	r.all = append(r.all, k)
	return true
}

func loadKeys(keys []Key) (*keyring, error) {
	r := &keyring{byKID: map[string]*vkey{}}
	for i, k := range keys {
		vk, err := loadKey(i, k)
		if err != nil {
			return nil, err
		}
		if !r.add(vk) {
			return nil, fmt.Errorf("auth.keys[%d].id: duplicate kid %q", i, k.ID)
		}
	}
	return r, nil
}

// Verifier checks JWTs. It is safe for concurrent use. Close stops its JWKS
// refresher.
type Verifier struct {
	opts   Options
	log    *slog.Logger
	parser *jwt.Parser
	static *keyring
	jwks   *jwksSource // nil without JWKSURL

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// NewVerifier loads the static keys and, when JWKSURL is set, fetches the
// JWKS once (waiting at most as long as ctx) and starts a refresher owned by
// the Verifier. Errors
// name the offending configuration field.
func NewVerifier(ctx context.Context, opts Options, log *slog.Logger) (*Verifier, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	static, err := loadKeys(opts.Keys)
	if err != nil {
		return nil, err
	}
	v := &Verifier{
		opts:   opts,
		log:    log,
		static: static,
		// Claims are validated by hand below so every failure gets its own
		// Reason; strict decoding refuses non-canonical base64.
		parser: jwt.NewParser(jwt.WithoutClaimsValidation(), jwt.WithJSONNumber(), jwt.WithStrictDecoding()),
	}
	if opts.JWKSURL != "" {
		client := opts.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: DefaultJWKSTimeout}
		}
		timeout := DefaultJWKSTimeout
		if client.Timeout > 0 && client.Timeout < timeout {
			timeout = client.Timeout
		}
		// The refresher and every fetch live under rctx, never under a
		// request's context; Close ends them.
		rctx, cancel := context.WithCancel(context.Background())
		v.cancel = cancel
		v.jwks = &jwksSource{url: opts.JWKSURL, client: client, minGap: opts.JWKSMinRefresh, timeout: timeout,
			now: opts.Now, log: log, base: rctx, wg: &v.wg}
		if err := v.jwks.refresh(ctx, false); err != nil {
			v.Close()
			return nil, fmt.Errorf("auth.jwks_url: initial fetch: %w", err)
		}
		v.wg.Add(1)
		go v.refreshLoop(rctx)
	}
	return v, nil
}

// Close stops the JWKS refresher and waits for it. It is idempotent; Verify
// keeps working with the last keys after Close.
func (v *Verifier) Close() {
	v.closeOnce.Do(func() {
		if v.cancel != nil {
			v.cancel()
		}
		if v.jwks != nil {
			// No fetch starts after this (refresh does its wg.Add under mu),
			// so Wait below cannot race an Add.
			v.jwks.mu.Lock()
			v.jwks.closed = true
			v.jwks.mu.Unlock()
		}
		v.wg.Wait()
	})
}

func (v *Verifier) refreshLoop(ctx context.Context) {
	defer v.wg.Done()
	t := time.NewTicker(v.opts.JWKSRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := v.jwks.refresh(ctx, false); err != nil && ctx.Err() == nil {
				v.log.Warn("jwks refresh failed; keeping previous keys", "url", v.opts.JWKSURL, "err", err)
			}
		}
	}
}

// TypeClaim is the claim that tells token kinds apart, and TypeSubscription
// its value in a per-channel subscription token. A subscription token is a
// grant to subscribe to one channel, never a credential to connect; and an
// access token is never a subscription grant, even when it has a "channel"
// claim (which any token issuer may add for its own reasons).
const (
	TypeClaim        = "typ"
	TypeSubscription = "subscription"
)

// Verify checks an access token (handshake, ticket exchange, refresh) and
// returns the identity it proves. A subscription token is refused
// (ReasonWrongTokenType). Every failure is an *Error; see Reason.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	id, err := v.verify(ctx, token)
	if err != nil {
		return Identity{}, err
	}
	if isSubscription(id.Claims) {
		return Identity{}, newErr(ReasonWrongTokenType, "a subscription token is not an access token")
	}
	return id, nil
}

// VerifySubscription checks a per-channel subscription token: signed and
// timed like an access token, and with claim typ = "subscription".
func (v *Verifier) VerifySubscription(ctx context.Context, token string) (Identity, error) {
	id, err := v.verify(ctx, token)
	if err != nil {
		return Identity{}, err
	}
	if !isSubscription(id.Claims) {
		return Identity{}, newErr(ReasonWrongTokenType, "not a subscription token (claim %q must be %q)", TypeClaim, TypeSubscription)
	}
	return id, nil
}

func isSubscription(claims map[string]any) bool {
	t, _ := claims[TypeClaim].(string)
	return t == TypeSubscription
}

func (v *Verifier) verify(ctx context.Context, token string) (Identity, error) {
	if token == "" {
		return Identity{}, newErr(ReasonMalformed, "empty token")
	}
	if len(token) > MaxTokenBytes {
		return Identity{}, newErr(ReasonMalformed, "token longer than %d bytes", MaxTokenBytes)
	}
	tok, err := v.parser.ParseWithClaims(token, jwt.MapClaims{}, func(t *jwt.Token) (any, error) {
		return v.selectKey(ctx, t)
	})
	if err != nil {
		var ae *Error
		switch {
		case errors.As(err, &ae):
			return Identity{}, ae
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return Identity{}, &Error{Reason: ReasonBadSignature, Err: err}
		case errors.Is(err, jwt.ErrTokenUnverifiable):
			// Reached only for algs golang-jwt does not know or a missing alg.
			return Identity{}, &Error{Reason: ReasonAlgNotAllowed, Err: err}
		default:
			return Identity{}, &Error{Reason: ReasonMalformed, Err: err}
		}
	}
	claims, ok := tok.Claims.(jwt.MapClaims)
	if !ok {
		return Identity{}, newErr(ReasonMalformed, "unexpected claims type %T", tok.Claims)
	}
	return v.checkClaims(claims)
}

// selectKey picks the verification key(s) for t. Keys come only from
// configuration or the JWKS, never from the token (jwk/jku/x5u are ignored).
func (v *Verifier) selectKey(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if strings.EqualFold(alg, "none") {
		return nil, newErr(ReasonAlgNotAllowed, `alg "none" is never accepted`)
	}
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 §4.1.11: we understand no extensions, so must refuse.
		return nil, newErr(ReasonMalformed, "crit header not supported")
	}
	rawKID, hasKID := t.Header["kid"]
	if !hasKID {
		return v.candidates(alg)
	}
	kid, ok := rawKID.(string)
	if !ok || kid == "" || len(kid) > maxKIDBytes {
		return nil, newErr(ReasonMalformed, "kid must be a non-empty string of at most %d bytes", maxKIDBytes)
	}
	k := v.lookup(kid)
	if k == nil && v.jwks != nil {
		// Maybe the provider rotated: refresh (rate limited) and retry once.
		// The fetch is shared and detached: ctx only bounds how long this
		// handshake waits for it.
		ferr := v.jwks.refresh(ctx, true)
		if k = v.lookup(kid); k == nil && ferr != nil {
			return nil, &Error{Reason: ReasonJWKSUnavailable, Err: fmt.Errorf("kid %q unknown and JWKS refresh failed: %w", kid, ferr)}
		}
	}
	if k == nil {
		return nil, newErr(ReasonUnknownKey, "no key with kid %q", kid)
	}
	if !k.allows(alg) {
		return nil, newErr(ReasonAlgNotAllowed, "alg %q not allowed for kid %q", alg, kid)
	}
	return k.key, nil
}

func (v *Verifier) lookup(kid string) *vkey {
	if k, ok := v.static.byKID[kid]; ok {
		return k
	}
	if v.jwks != nil {
		if r := v.jwks.ring.Load(); r != nil {
			return r.byKID[kid]
		}
	}
	return nil
}

// candidates returns the keys a kid-less token may be verified with.
func (v *Verifier) candidates(alg string) (any, error) {
	var keys []jwt.VerificationKey
	collect := func(r *keyring) {
		if r == nil {
			return
		}
		for _, k := range r.all {
			if k.allows(alg) {
				keys = append(keys, k.key)
			}
		}
	}
	collect(v.static)
	if v.jwks != nil {
		collect(v.jwks.ring.Load())
	}
	switch {
	case len(keys) == 0:
		return nil, newErr(ReasonAlgNotAllowed, "no key allows alg %q", alg)
	case len(keys) > maxCandidates:
		return nil, newErr(ReasonUnknownKey, "token has no kid and %d keys allow alg %q (at most %d are tried)", len(keys), alg, maxCandidates)
	case len(keys) == 1:
		return keys[0], nil
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// checkClaims validates registered claims of a correctly signed token.
func (v *Verifier) checkClaims(c jwt.MapClaims) (Identity, error) {
	now := v.opts.Now()
	leeway := v.opts.Leeway

	exp, err := c.GetExpirationTime()
	if err != nil {
		return Identity{}, &Error{Reason: ReasonMalformed, Err: fmt.Errorf("exp: %w", err)}
	}
	if exp == nil {
		return Identity{}, newErr(ReasonMissingExp, "token has no exp")
	}
	if !now.Before(exp.Add(leeway)) {
		return Identity{}, newErr(ReasonExpired, "expired at %s", exp.UTC().Format(time.RFC3339))
	}
	nbf, err := c.GetNotBefore()
	if err != nil {
		return Identity{}, &Error{Reason: ReasonMalformed, Err: fmt.Errorf("nbf: %w", err)}
	}
	if nbf != nil && now.Add(leeway).Before(nbf.Time) {
		return Identity{}, newErr(ReasonNotYetValid, "not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	iat, err := c.GetIssuedAt()
	if err != nil {
		return Identity{}, &Error{Reason: ReasonMalformed, Err: fmt.Errorf("iat: %w", err)}
	}
	if iat != nil && now.Add(leeway).Before(iat.Time) {
		return Identity{}, newErr(ReasonIssuedInFuture, "issued at %s, in the future", iat.UTC().Format(time.RFC3339))
	}
	from := now
	if iat != nil {
		from = iat.Time
	}
	if life := exp.Sub(from); life > v.opts.MaxLifetime {
		return Identity{}, newErr(ReasonLifetimeTooLong, "lifetime %s exceeds %s", life.Round(time.Second), v.opts.MaxLifetime)
	}

	iss, err := c.GetIssuer()
	if err != nil {
		return Identity{}, &Error{Reason: ReasonMalformed, Err: fmt.Errorf("iss: %w", err)}
	}
	if v.opts.Issuer != "" && iss != v.opts.Issuer {
		return Identity{}, newErr(ReasonWrongIssuer, "issuer %.64q not accepted", iss)
	}
	aud, err := c.GetAudience()
	if err != nil {
		return Identity{}, &Error{Reason: ReasonMalformed, Err: fmt.Errorf("aud: %w", err)}
	}
	if len(v.opts.Audience) > 0 && !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(v.opts.Audience, a) }) {
		return Identity{}, newErr(ReasonWrongAudience, "no accepted audience in token (%d entries)", len(aud))
	}

	sub, ok := c[v.opts.SubjectClaim].(string)
	if !ok || sub == "" {
		return Identity{}, newErr(ReasonMissingSubject, "claim %q missing or not a non-empty string", v.opts.SubjectClaim)
	}
	if len(sub) > maxSubjectBytes {
		return Identity{}, newErr(ReasonMalformed, "subject longer than %d bytes", maxSubjectBytes)
	}

	id := Identity{
		Subject:       sub,
		Claims:        map[string]any(c),
		ExpiresAt:     exp.Time,
		Source:        IdentitySourceJWT,
		KeyThumbprint: cnfString(c, "jkt"),
	}
	if iat != nil {
		id.IssuedAt = iat.Time
	}
	return id, nil
}
