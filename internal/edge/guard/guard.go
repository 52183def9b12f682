// Package guard decides every WebSocket handshake before anything is upgraded: the
// client's real IP, the per-IP handshake rate, bans, protocol validity, Origin,
// the credential (JWT, mTLS, one-time ticket) and connection quotas. A refusal is a
// plain HTTP answer with a status and a small JSON body; nothing reaches a 101 unless
// every check passed. The reason for a refusal is precise in logs and metrics, but
// the client learns only the class (401, 403, 429, …), never which token check failed.
package guard

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/state/ban"
	"github.com/wsgate/wsgate/internal/state/limit"
	"github.com/wsgate/wsgate/internal/state/quota"
	"github.com/wsgate/wsgate/internal/state/ticket"
)

// Auth modes.
const (
	ModeJWT        = "jwt"
	ModeMTLS       = "mtls"
	ModeJWTOrMTLS  = "jwt_or_mtls"
	ModeJWTAndMTLS = "jwt_and_mtls"
)

// Policy is the part of the guard that hot reload may replace as a whole.
type Policy struct {
	Origins        OriginPolicy
	HandshakeRate  limit.Limit
	TrustedProxies []netip.Prefix
	// IPPrefixes turn the client address into the key of every per-IP check here
	// (handshake rate, IP ban, IP connection quota); zero means /32 and /64.
	IPPrefixes   limit.IPPrefixes
	Extract      auth.ExtractOptions
	AuthMode     string
	IdentityFrom string // "san" or "cn"
	// Subprotocols are the application subprotocols this endpoint speaks, in
	// preference order.
	Subprotocols []string
}

// Guard runs the handshake checks. It is safe for concurrent use.
type Guard struct {
	policy   atomic.Pointer[Policy]
	verifier atomic.Pointer[auth.Verifier]
	limiter  limit.Limiter
	bans     ban.List
	quotas   *quota.Quotas
	tickets  *ticket.Issuer
}

// Deps are the shared stores the guard consults.
type Deps struct {
	Verifier *auth.Verifier
	Limiter  limit.Limiter
	Bans     ban.List
	Quotas   *quota.Quotas
	Tickets  *ticket.Issuer // nil disables tickets
}

// New returns a Guard with the given policy and stores.
func New(p Policy, d Deps) *Guard {
	g := &Guard{limiter: d.Limiter, bans: d.Bans, quotas: d.Quotas, tickets: d.Tickets}
	g.policy.Store(&p)
	g.verifier.Store(d.Verifier)
	return g
}

// SetPolicy replaces the policy for handshakes that start from now on (hot reload).
func (g *Guard) SetPolicy(p Policy) { g.policy.Store(&p) }

// SetVerifier replaces the token verifier (hot reload of keys).
func (g *Guard) SetVerifier(v *auth.Verifier) { g.verifier.Store(v) }

// ClientKey returns the per-IP key of r's client (its real IP through trusted
// proxies, then Policy.IPPrefixes), as Check counts it: for per-IP alerts and
// logs of refused handshakes.
func (g *Guard) ClientKey(r *http.Request) string {
	p := g.policy.Load()
	return p.IPPrefixes.Key(ClientIP(r, p.TrustedProxies))
}

// Verifier returns the token verifier in force.
func (g *Guard) Verifier() *auth.Verifier { return g.verifier.Load() }

// Policy returns the policy in force.
func (g *Guard) Policy() *Policy { return g.policy.Load() }

// Admission is what a successful handshake check yields. Lease must be released when
// the connection ends, whichever way it ends.
type Admission struct {
	IP          netip.Addr
	IPKey       string // Policy.IPPrefixes.Key(IP): what per-IP limits and bans count
	Identity    auth.Identity
	Credential  auth.CredentialSource
	Subprotocol string
	// Offered is every application subprotocol the client offered (token
	// entries removed), for a route that lets its upstream choose; Echo is the
	// credential marker ("bearer") to answer when nothing else is.
	Offered []string
	Echo    string
	Lease   *quota.Lease
}

// Rejection is a refused handshake. Status and Code are what the client sees;
// Reason is for logs, metrics and the audit log only.
type Rejection struct {
	Status     int
	Code       string // public: "unauthorized", "forbidden_origin", "rate_limited", …
	Reason     string // internal: "expired", "bad_signature", "ip_quota", …
	RetryAfter time.Duration
	Header     http.Header
	Err        error
	// Message, when set, is a fixed hint for the client's developer (how to fix a
	// malformed request). It never carries anything the client sent.
	Message string
}

func (r *Rejection) Error() string {
	return fmt.Sprintf("handshake rejected: %d %s (%s)", r.Status, r.Code, r.Reason)
}

// Write answers the client: status, optional Retry-After, and a JSON body that names
// the class of refusal and never echoes anything the client sent.
func (r *Rejection) Write(w http.ResponseWriter) {
	h := w.Header()
	for k, vs := range r.Header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Connection", "close")
	body := `{"error":"` + r.Code + `"`
	if r.Message != "" {
		var msg strings.Builder
		enc := json.NewEncoder(&msg)
		enc.SetEscapeHTML(false) // a JSON body, never HTML: keep "<jwt>" readable
		_ = enc.Encode(r.Message)
		body += `,"message":` + strings.TrimSuffix(msg.String(), "\n")
	}
	if r.RetryAfter > 0 {
		secs := int((r.RetryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.Itoa(secs))
		body += `,"retry_after_s":` + strconv.Itoa(secs)
	}
	body += "}\n"
	w.WriteHeader(r.Status)
	_, _ = w.Write([]byte(body))
}

func reject(status int, code, reason string, err error) *Rejection {
	return &Rejection{Status: status, Code: code, Reason: reason, Err: err}
}

// Check runs every handshake check in order, cheapest and most protective first.
// The caller writes the Rejection, or upgrades with the Admission.
func (g *Guard) Check(ctx context.Context, r *http.Request) (*Admission, *Rejection) {
	p := g.policy.Load()
	ip := ClientIP(r, p.TrustedProxies)
	ipKey := p.IPPrefixes.Key(ip)

	// 1. Handshake rate per IP, before any expensive work (signature checks).
	if p.HandshakeRate.Rate > 0 {
		ok, retry, err := g.limiter.Allow(ctx, "hs:"+ipKey, p.HandshakeRate, 1)
		if err != nil {
			// The limit store is down: the handshake rate fails closed, since a flood
			// is exactly when it matters.
			return nil, &Rejection{Status: http.StatusServiceUnavailable, Code: "unavailable", Reason: "limiter_error", RetryAfter: time.Second, Err: err}
		}
		if !ok {
			return nil, &Rejection{Status: http.StatusTooManyRequests, Code: "rate_limited", Reason: "handshake_rate", RetryAfter: max(retry, time.Second)}
		}
	}
	// 2. Banned IP.
	if rej := g.checkBan(ctx, ban.IPSubject(ipKey)); rej != nil {
		return nil, rej
	}
	// 3. Protocol: wsgate decides 400 and 426, not the library.
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		// An upgrade request has no body. Bytes after the headers would
		// otherwise be read as WebSocket frames: a proxy that forwarded them as
		// a body and wsgate would disagree on what the client sent (smuggling).
		rej := reject(http.StatusBadRequest, "bad_request", "upgrade_with_body", errUpgradeBody)
		rej.Message = "an upgrade request must not have a body (Content-Length or Transfer-Encoding)"
		return nil, rej
	}
	if he := transport.ValidateUpgradeRequest(r); he != nil {
		rej := reject(he.Status, "bad_request", "bad_upgrade", he)
		if he.Status == http.StatusUpgradeRequired {
			rej.Code = "unsupported_version"
		}
		rej.Header = he.Header
		return nil, rej
	}
	// 4. Origin (CSWSH).
	if err := p.Origins.check(r, requestScheme(r, p.TrustedProxies)); err != nil {
		reason := "bad_origin"
		if errors.Is(err, errOriginMissing) {
			reason = "missing_origin"
		}
		return nil, reject(http.StatusForbidden, "forbidden_origin", reason, err)
	}
	// 5. Credential.
	adm := &Admission{IP: ip, IPKey: ipKey}
	appProtocols, echo, rej := g.authenticate(ctx, r, p, adm)
	if rej != nil {
		return nil, rej
	}
	// 6. Banned user.
	if rej := g.checkBan(ctx, ban.UserSubject(adm.Identity.Subject)); rej != nil {
		return nil, rej
	}
	// 7. Quotas, last: a slot is only taken by a client that passed everything else.
	lease, err := g.quotas.Acquire(ctx, ipKey, adm.Identity.Subject)
	if err != nil {
		switch {
		case errors.Is(err, quota.ErrGlobalQuota):
			return nil, &Rejection{Status: http.StatusServiceUnavailable, Code: "server_full", Reason: "global_quota", RetryAfter: 5 * time.Second, Err: err}
		case errors.Is(err, quota.ErrIPQuota):
			return nil, &Rejection{Status: http.StatusTooManyRequests, Code: "too_many_connections", Reason: "ip_quota", RetryAfter: 5 * time.Second, Err: err}
		case errors.Is(err, quota.ErrUserQuota):
			return nil, &Rejection{Status: http.StatusTooManyRequests, Code: "too_many_connections", Reason: "user_quota", RetryAfter: 5 * time.Second, Err: err}
		default:
			return nil, &Rejection{Status: http.StatusServiceUnavailable, Code: "unavailable", Reason: "quota_error", RetryAfter: time.Second, Err: err}
		}
	}
	adm.Lease = lease
	adm.Offered = appProtocols
	adm.Subprotocol = chooseSubprotocol(p.Subprotocols, appProtocols, echo)
	return adm, nil
}

func (g *Guard) checkBan(ctx context.Context, subject string) *Rejection {
	if g.bans == nil {
		return nil
	}
	b, banned, err := g.bans.Banned(ctx, subject)
	if err != nil {
		// A ban list that cannot answer does not stop traffic: bans are a
		// reaction to abuse, the limits and auth still hold.
		return nil
	}
	if !banned {
		return nil
	}
	return &Rejection{Status: http.StatusForbidden, Code: "banned", Reason: "banned", RetryAfter: time.Until(b.Until)}
}

func unauthorized(reason string, err error) *Rejection {
	return reject(http.StatusUnauthorized, "unauthorized", reason, err)
}

// authenticate fills adm.Identity according to the auth mode.
func (g *Guard) authenticate(ctx context.Context, r *http.Request, p *Policy, adm *Admission) ([]string, string, *Rejection) {
	appProtocols, rej := g.identify(ctx, r, p, adm)
	return appProtocols, adm.Echo, rej
}

func (g *Guard) identify(ctx context.Context, r *http.Request, p *Policy, adm *Admission) ([]string, *Rejection) {
	leaf, certID, certErr := g.certIdentity(r, p)
	cred, appProtocols, credErr := auth.Extract(r, p.Extract)
	adm.Echo = cred.EchoProtocol
	hasCred := credErr == nil
	if errors.Is(credErr, auth.ErrAmbiguousCredential) {
		rej := reject(http.StatusBadRequest, "bad_request", "ambiguous_credential", credErr)
		rej.Message = "send one credential: an Authorization header or a token subprotocol, not both"
		return nil, rej
	}
	if credErr != nil && !errors.Is(credErr, auth.ErrNoCredential) {
		return nil, unauthorized("malformed_credential", credErr)
	}
	if hasCred && cred.Source == auth.SourceSubprotocol && cred.EchoProtocol == "" && len(appProtocols) == 0 {
		// "token.<jwt>" as the only offered subprotocol: there is nothing we may
		// answer (never the token), and a browser fails a connection whose offer
		// got no answer, so the upgrade would only end in 1006.
		rej := reject(http.StatusBadRequest, "bad_request", "token_subprotocol_alone", errTokenProtocolAlone)
		rej.Message = "token.<jwt> must come with an application subprotocol (e.g. wsgate.v1, token.<jwt>); or offer bearer, <jwt>"
		return nil, rej
	}
	switch p.AuthMode {
	case ModeMTLS:
		if certErr != nil {
			return nil, unauthorized("no_client_certificate", certErr)
		}
		adm.Identity = auth.Identity{Subject: certID, CertSubject: certID, Source: "mtls"}
		return appProtocols, nil
	case ModeJWTOrMTLS:
		if !hasCred {
			if certErr != nil {
				return nil, unauthorized("no_credential", credErr)
			}
			adm.Identity = auth.Identity{Subject: certID, CertSubject: certID, Source: "mtls"}
			return appProtocols, nil
		}
	case ModeJWTAndMTLS:
		if certErr != nil {
			return nil, unauthorized("no_client_certificate", certErr)
		}
	}
	if !hasCred {
		return nil, unauthorized("no_credential", credErr)
	}
	adm.Credential = cred.Source
	var id auth.Identity
	var err error
	if cred.Source == auth.SourceTicket {
		if g.tickets == nil {
			return nil, unauthorized("tickets_disabled", nil)
		}
		id, err = g.tickets.Redeem(ctx, cred.Value)
		if errors.Is(err, ticket.ErrUnavailable) {
			return nil, &Rejection{Status: http.StatusServiceUnavailable, Code: "unavailable", Reason: "ticket_store_error", RetryAfter: time.Second, Err: err}
		}
		if err != nil {
			return nil, unauthorized("bad_ticket", err)
		}
		if !id.ExpiresAt.IsZero() && time.Now().After(id.ExpiresAt) {
			return nil, unauthorized("expired", nil)
		}
	} else {
		id, err = g.verifier.Load().Verify(ctx, cred.Value)
		if err != nil {
			return nil, unauthorized(auth.Reason(err), err)
		}
	}
	if certErr == nil && certID != "" {
		// Binding checks cnf.x5t#S256 when the token carries it and caps the
		// identity's lifetime at the certificate's.
		bound, err := auth.BindCert(id, leaf)
		if err != nil {
			return nil, unauthorized("certificate_mismatch", err)
		}
		bound.CertSubject = certID
		id = bound
	}
	adm.Identity = id
	return appProtocols, nil
}

var (
	errNoCert             = errors.New("no verified client certificate")
	errUpgradeBody        = errors.New("upgrade request with a body")
	errTokenProtocolAlone = errors.New("token subprotocol offered without an application subprotocol")
)

func (g *Guard) certIdentity(r *http.Request, p *Policy) (*x509.Certificate, string, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, "", errNoCert
	}
	leaf := r.TLS.VerifiedChains[0][0]
	id, err := auth.IdentityFromCert(leaf, p.IdentityFrom)
	return leaf, id, err
}

// chooseSubprotocol picks the first application subprotocol the client offered that
// this endpoint speaks. Token-carrying entries were already removed by auth.Extract,
// so a token can never be echoed. When none fits, the "bearer" marker (echo) is
// answered if the client used it: browsers fail a connection whose offered
// protocols get no answer, and the marker is not a secret.
func chooseSubprotocol(supported, offered []string, echo string) string {
	for _, o := range offered {
		for _, s := range supported {
			if o == s {
				return o
			}
		}
	}
	return echo
}
