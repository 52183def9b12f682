package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/integrity"
	"github.com/wsgate/wsgate/internal/conn/pipeline"
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/edge/guard"
	"github.com/wsgate/wsgate/web"
)

// integrityState is the server's message-integrity machinery: the verifier shared by
// every connection (with the node's replay cache), the HMAC master keys, and the
// key that signs server output.
type integrityState struct {
	verifier *integrity.Verifier
	keys     atomic.Pointer[integrity.KeyRing] // nil when no master key is configured
	signer   *integrity.ServerSigner
}

// buildIntegrity builds the verifier without master keys: installing the
// runtime gives it the key ring.
func (s *Server) buildIntegrity(cfg *config.Config, replay integrity.ReplayCache) error {
	v, err := integrity.NewVerifier(integrity.Options{Replay: replay, Window: cfg.Integrity.Window})
	if err != nil {
		return fmt.Errorf("integrity: %w", err)
	}
	var sk integrity.SigningKey
	if cfg.Integrity.ServerSigningKey != "" {
		seed, err := auth.ParseSecret(cfg.Integrity.ServerSigningKey)
		if err != nil {
			return fmt.Errorf("integrity.server_signing_key: %w", err)
		}
		if sk, err = integrity.SigningKeyFromSeed("srv-1", seed[:32]); err != nil {
			return fmt.Errorf("integrity.server_signing_key: %w", err)
		}
	} else if sk, err = integrity.GenerateSigningKey(randomKID()); err != nil {
		return fmt.Errorf("integrity: %w", err)
	}
	signer, err := integrity.NewServerSigner(sk)
	if err != nil {
		return fmt.Errorf("integrity: %w", err)
	}
	s.integ = &integrityState{verifier: v, signer: signer}
	return nil
}

func randomKID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("srv-%x", b)
}

// keyRing builds the HMAC master keys; in dev mode with hmac on and none given, one
// is generated (per start, like the dev JWT key).
func keyRing(cfg *config.Config) (*integrity.KeyRing, error) {
	keys := cfg.Integrity.MasterKeys
	if len(keys) == 0 {
		if !cfg.Dev {
			return nil, nil
		}
		keys = []config.IntegrityKey{{ID: "dev", Secret: auth.NewSecret()}}
	}
	var mks []integrity.MasterKey
	for i, k := range keys {
		sec, err := auth.ParseSecret(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("integrity.master_keys[%d].secret: %w", i, err)
		}
		mks = append(mks, integrity.MasterKey{ID: k.ID, Secret: sec})
	}
	r, err := integrity.NewKeyRing(mks[0], mks[1:]...)
	if err != nil {
		return nil, fmt.Errorf("integrity.master_keys: %w", err)
	}
	return r, nil
}

// integrityVerifier adapts integrity.Verifier to the pipeline's Verifier stage.
type integrityVerifier struct{ v *integrity.Verifier }

func (iv integrityVerifier) Open(ctx context.Context, st *pipeline.ConnState, m *pipeline.Message) error {
	// A message is an envelope when, and only when, its top-level object has a "sig"
	// member (the scanner located it): a "sig" in user text or inside a payload is
	// content, not a signature.
	signed := m.Members.Sig != nil
	cv := st.Integrity
	if cv == nil {
		if signed {
			return &protocol.Error{Code: protocol.CodeIntegrityPrefix + string(integrity.CodeBadEnvelope), Message: "signed messages need integrity keys for this connection", Strike: true}
		}
		return nil
	}
	if !signed && (!cv.Required || m.Type == protocol.TypePing) {
		return nil
	}
	body, typ, err := iv.v.Open(ctx, cv.Conn, m.Raw)
	if err != nil {
		code := integrity.CodeOf(err)
		rej := &protocol.Error{Code: protocol.CodeIntegrityPrefix + string(code), Message: "message integrity check failed: " + string(code), Strike: true}
		if code == integrity.CodeInternal {
			rej.Code, rej.Message, rej.Strike = protocol.CodeUnavailable, "integrity check unavailable", false
		}
		return rej
	}
	m.Raw, m.Type, m.Signed = body, typ, true
	return nil
}

// signedMode is how a connection signs: "hmac", "pop" or "" when it cannot.
func signedMode(st *pipeline.ConnState) string {
	if cv := st.Integrity; cv != nil {
		return string(cv.Conn.Mode())
	}
	return ""
}

// connIntegrity prepares the per-connection integrity state for an admitted
// handshake. In pop mode the client must prove possession of the key its token names
// (cnf.jkt): a stolen token without the private key cannot connect. With the
// endpoint's mode off, a connection still gets optional integrity state (pop when
// its token names a key and it proves possession, else hmac when master keys exist)
// so that namespaces can require signed messages.
func (s *Server) connIntegrity(r *http.Request, mode string, adm *guard.Admission, connID string) (*pipeline.Integrity, *guard.Rejection) {
	if mode == "" || mode == "off" {
		return s.optionalIntegrity(r, adm, connID), nil
	}
	ci, rej := s.requiredIntegrity(r, mode, adm, connID)
	if ci == nil {
		return nil, rej
	}
	return &pipeline.Integrity{Conn: ci, Required: true}, nil
}

func (s *Server) optionalIntegrity(r *http.Request, adm *guard.Admission, connID string) *pipeline.Integrity {
	if adm.Identity.KeyThumbprint != "" && r.URL.Query().Has(integrity.ParamPopKey) {
		if ci, rej := s.requiredIntegrity(r, "pop", adm, connID); rej == nil {
			return &pipeline.Integrity{Conn: ci}
		}
	}
	if s.integ.keys.Load() != nil {
		if ci, err := s.integ.verifier.NewHMACConn(adm.Identity.Subject, connID); err == nil {
			return &pipeline.Integrity{Conn: ci}
		}
	}
	return nil
}

func (s *Server) requiredIntegrity(r *http.Request, mode string, adm *guard.Admission, connID string) (*integrity.ConnIntegrity, *guard.Rejection) {
	switch mode {
	case "hmac":
		ci, err := s.integ.verifier.NewHMACConn(adm.Identity.Subject, connID)
		if err != nil {
			return nil, &guard.Rejection{Status: http.StatusServiceUnavailable, Code: "unavailable", Reason: "integrity_unavailable", Err: err}
		}
		return ci, nil
	case "pop":
		jkt := adm.Identity.KeyThumbprint
		if jkt == "" {
			return nil, &guard.Rejection{Status: http.StatusUnauthorized, Code: "unauthorized", Reason: "pop_no_cnf"}
		}
		params, err := integrity.PopParamsFromRequest(r)
		if err != nil {
			return nil, &guard.Rejection{Status: http.StatusUnauthorized, Code: "unauthorized", Reason: "pop_bad_params", Err: err}
		}
		pk, err := s.integ.verifier.VerifyPopHandshake(r.Context(), params, jkt, r.Host, r.URL.EscapedPath())
		if err != nil {
			reason := "pop_" + string(integrity.CodeOf(err))
			if errors.Is(err, integrity.ErrReplay) {
				reason = "pop_replay"
			}
			return nil, &guard.Rejection{Status: http.StatusUnauthorized, Code: "unauthorized", Reason: reason, Err: err}
		}
		ci, err := s.integ.verifier.NewPopConn(adm.Identity.Subject, connID, pk)
		if err != nil {
			return nil, &guard.Rejection{Status: http.StatusUnauthorized, Code: "unauthorized", Reason: "pop_key", Err: err}
		}
		return ci, nil
	}
	return nil, &guard.Rejection{Status: http.StatusInternalServerError, Code: "internal", Reason: "integrity_mode"}
}

// mountIntegrity serves the server's public signing keys and the browser module.
func (s *Server) mountIntegrity(mux *http.ServeMux) {
	mux.HandleFunc("GET /.well-known/wsgate-keys.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(s.integ.signer.JWKS())
	})
	mux.Handle("GET /client/wsgate.js", web.Handler())
}
