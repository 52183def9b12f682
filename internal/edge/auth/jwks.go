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

	"github.com/wsgate/wsgate/internal/truncate"
)

// Bounds on a fetched JWKS.
const (
	maxJWKSBytes = 1 << 20
	maxJWKSKeys  = 100
)

// jwksSource holds the keys of one JWKS URL.
//
// A fetch never runs on a request's context: a client that hangs up must not
// cancel a refresh that every other client is waiting for (and have the
// cancellation cached as a failure for minGap). Fetches run on a goroutine owned
// by the source, under base (cancelled by Close) and their own timeout; every
// caller that wants a refresh while one is in flight waits for that one
// (single flight), and may stop waiting when its own context ends without
// affecting the fetch. Unknown-kid fetches are spaced at least minGap apart.
type jwksSource struct {
	url     string
	client  *http.Client
	minGap  time.Duration
	timeout time.Duration // bound on one fetch, whatever the client's timeout
	now     func() time.Time
	log     *slog.Logger

	base context.Context // ends at Close: aborts an in-flight fetch
	wg   *sync.WaitGroup // owner's: Close waits for fetch goroutines

	ring atomic.Pointer[keyring]

	mu          sync.Mutex // guards the fields below
	closed      bool       // set by Verifier.Close: no new fetch starts
	inflight    *jwksCall  // nil when no fetch runs
	lastAttempt time.Time  // end of the last completed (not aborted) fetch
	lastErr     error
}

// jwksCall is one fetch in flight; done closes when err is set.
type jwksCall struct {
	done chan struct{}
	err  error
}

// refresh makes sure a fetch completes after the call started, or, with
// rateLimited, reuses the last completed fetch's outcome when it ended less than
// minGap ago. It returns the fetch's error, or ctx's when the caller stops
// waiting first; either way the fetch itself goes on.
func (s *jwksSource) refresh(ctx context.Context, rateLimited bool) error {
	s.mu.Lock()
	if rateLimited && !s.lastAttempt.IsZero() && s.now().Sub(s.lastAttempt) < s.minGap {
		err := s.lastErr
		s.mu.Unlock()
		return err
	}
	call := s.inflight
	if call == nil {
		if s.closed {
			s.mu.Unlock()
			return errors.New("jwks refresh: verifier closed")
		}
		call = &jwksCall{done: make(chan struct{})}
		s.inflight = call
		s.wg.Add(1)
		go s.run(call)
	}
	s.mu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return fmt.Errorf("wait for jwks refresh: %w", ctx.Err())
	}
}

// run performs one fetch for call and publishes its outcome.
func (s *jwksSource) run(call *jwksCall) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.base, s.timeout)
	err := s.fetch(ctx)
	cancel()
	s.mu.Lock()
	s.inflight = nil
	// A fetch aborted by Close says nothing about the identity provider: it is
	// not remembered as the last attempt.
	if s.base.Err() == nil {
		s.lastAttempt, s.lastErr = s.now(), err
	}
	call.err = err
	s.mu.Unlock()
	close(call.done)
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
			log.Warn("jwks: skipping key", "index", i, "kid", shorten(kid, 64), "err", err)
			continue
		}
		if !ring.add(vk) {
			log.Warn("jwks: skipping key with duplicate kid", "index", i, "kid", shorten(kid, 64))
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

// shorten cuts a kid from a remote JWKS for a log line, marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return truncate.UTF8(s, n) + "..."
}
