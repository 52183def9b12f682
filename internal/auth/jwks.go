package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Bounds on a fetched JWKS.
const (
	maxJWKSBytes = 1 << 20
	maxJWKSKeys  = 100
)

// jwksSource holds the keys of one JWKS URL. Fetches are serialised by sem;
// unknown-kid fetches are spaced at least minGap apart.
type jwksSource struct {
	url    string
	client *http.Client
	minGap time.Duration
	now    func() time.Time
	log    *slog.Logger

	ring atomic.Pointer[keyring]
	sem  chan struct{} // capacity 1: one fetch at a time

	mu          sync.Mutex // guards lastAttempt, lastErr
	lastAttempt time.Time
	lastErr     error
}

func (s *jwksSource) lock(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for jwks refresh: %w", ctx.Err())
	}
}

func (s *jwksSource) unlock() { <-s.sem }

// refresh fetches the set. With rateLimited, it skips the fetch (returning
// the last fetch's error) when the previous attempt was less than minGap ago;
// callers queued behind an in-flight fetch therefore reuse its result
// instead of fetching again.
func (s *jwksSource) refresh(ctx context.Context, rateLimited bool) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	s.mu.Lock()
	last, lastErr := s.lastAttempt, s.lastErr
	s.mu.Unlock()
	if rateLimited && !last.IsZero() && s.now().Sub(last) < s.minGap {
		return lastErr
	}
	err := s.fetch(ctx)
	s.mu.Lock()
	s.lastAttempt, s.lastErr = s.now(), err
	s.mu.Unlock()
	return err
}

func (s *jwksSource) fetch(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch jwks: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("read jwks: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("jwks larger than %d bytes", maxJWKSBytes)
	}
	ring, err := parseJWKS(body, s.log)
	if err != nil {
		return err
	}
	s.ring.Store(ring)
	return nil
}

// parseJWKS builds a keyring from a JWK Set document. Entries that cannot be
// used for signature verification are skipped (and logged) rather than
// failing the whole set, so one exotic key does not lock everyone out.
func parseJWKS(body []byte, log *slog.Logger) (*keyring, error) {
	set, err := jwk.Parse(body, jwk.WithStrictKeySetParsing(false), jwk.WithMaxKeys(maxJWKSKeys))
	if err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	ring := &keyring{byKID: map[string]*vkey{}}
	for i := range set.Len() {
		key, ok := set.Key(i)
		if !ok {
			continue
		}
		kid, _ := key.KeyID()
		vk, err := jwkToVKey(key)
		if err != nil {
			log.Warn("jwks: skipping key", "index", i, "kid", truncate(kid, 64), "err", err)
			continue
		}
		if !ring.add(vk) {
			log.Warn("jwks: skipping key with duplicate kid", "index", i, "kid", truncate(kid, 64))
		}
	}
	if len(ring.all) == 0 {
		return nil, errors.New("jwks has no usable signature keys")
	}
	return ring, nil
}

func jwkToVKey(key jwk.Key) (*vkey, error) {
	if use, ok := key.KeyUsage(); ok && use != "sig" {
		return nil, fmt.Errorf("key use %q is not sig", use)
	}
	if key.KeyType() == jwa.OctetSeq() {
		// An HMAC secret published at a URL is no secret; and accepting one
		// would reopen key confusion.
		return nil, errors.New("symmetric keys are not accepted from a JWKS")
	}
	raw, err := jwk.PublicRawKeyOf(key)
	if err != nil {
		return nil, fmt.Errorf("export public key: %w", err)
	}
	pub, err := checkPublicKey(raw)
	if err != nil {
		return nil, err
	}
	kid, _ := key.KeyID()
	if len(kid) > maxKIDBytes {
		return nil, fmt.Errorf("kid longer than %d bytes", maxKIDBytes)
	}
	var algs []string
	if a, ok := key.Algorithm(); ok && a.String() != "" {
		algs = []string{a.String()}
	}
	return newVKey(kid, pub, algs)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
