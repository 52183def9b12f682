package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestVerifyAlgorithms(t *testing.T) {
	clk := newClock()
	for _, tc := range algCases(t) {
		t.Run(tc.alg, func(t *testing.T) {
			v := newTestVerifier(t, Options{Keys: []Key{tc.key}, Now: clk.Now})
			for _, kid := range []string{tc.key.ID, ""} {
				s := mustSigner(t, tc.alg, tc.sign, kid, clk)
				tok := mint(t, s, "alice", time.Hour, map[string]any{"tier": "pro", "roles": []string{"a", "b"}, "n": 12345678901234567, "cnf": map[string]any{"jkt": "thumb"}})
				id, err := v.Verify(context.Background(), tok)
				if err != nil {
					t.Fatalf("kid %q: %v", kid, err)
				}
				if id.Subject != "alice" || id.Source != "jwt" || id.Tier("tier") != "pro" || id.KeyThumbprint != "thumb" {
					t.Fatalf("identity = %+v", id)
				}
				if !id.ExpiresAt.Equal(clk.Now().Add(time.Hour)) || !id.IssuedAt.Equal(clk.Now()) {
					t.Fatalf("times = %v %v", id.ExpiresAt, id.IssuedAt)
				}
				if roles, ok := id.Strings("roles"); !ok || len(roles) != 2 || !id.HasString("roles", "b") {
					t.Fatalf("roles = %v %v", roles, ok)
				}
				if n, ok := id.Claims["n"].(json.Number); !ok || n.String() != "12345678901234567" {
					t.Fatalf("large int claim = %#v", id.Claims["n"])
				}
			}
		})
	}
}

func TestVerifyAlgNone(t *testing.T) {
	k := keys(t)
	clk := newClock()
	v := newTestVerifier(t, Options{Keys: []Key{{Secret: string(k.secret)}}, Now: clk.Now})
	claims := map[string]any{"sub": "x", "exp": clk.Now().Add(time.Hour).Unix()}
	for _, alg := range []string{"none", "None", "NONE"} {
		for _, sig := range [][]byte{nil, []byte("x")} {
			_, err := v.Verify(context.Background(), rawToken(map[string]any{"alg": alg, "typ": "JWT"}, claims, sig))
			wantReason(t, err, ReasonAlgNotAllowed)
		}
	}
	// golang-jwt's own "none" token, with its magic key type.
	tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(claims)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), tok)
	wantReason(t, err, ReasonAlgNotAllowed)
	if _, err := loadKey(0, Key{Secret: string(k.secret), Algorithms: []string{"none"}}); err == nil {
		t.Fatal("alg none accepted in an allow-list")
	}
}

// TestKeyConfusion is the classic attack: the public RSA key is public, so
// an attacker HMACs a token with the PEM bytes as secret and hopes the
// server feeds the same bytes to HS256.
func TestKeyConfusion(t *testing.T) {
	k := keys(t)
	clk := newClock()
	pemStr := pubPEM(t, &k.rsa.PublicKey)
	v := newTestVerifier(t, Options{Keys: []Key{{ID: "rsa", PublicKeyPEM: pemStr}}, Now: clk.Now})
	for _, kid := range []string{"rsa", ""} {
		for _, secret := range [][]byte{[]byte(pemStr), []byte(strings.TrimSpace(pemStr))} {
			s := &Signer{method: jwt.SigningMethodHS256, key: secret, kid: kid, now: clk.Now}
			tok := mint(t, s, "mallory", time.Minute, nil)
			_, err := v.Verify(context.Background(), tok)
			wantReason(t, err, ReasonAlgNotAllowed)
		}
	}
	// And the configuration that would allow it cannot be written.
	_, err := loadKey(0, Key{PublicKeyPEM: pemStr, Algorithms: []string{"HS256"}})
	wantErrContains(t, err, `auth.keys[0].algorithms: algorithm "HS256" is not allowed for an RSA key`)
	_, err = loadKey(0, Key{PublicKeyPEM: pubPEM(t, &k.ec256.PublicKey), Algorithms: []string{"ES384"}})
	wantErrContains(t, err, "not allowed for an ECDSA P-256 key")
	_, err = loadKey(0, Key{PublicKeyPEM: pubPEM(t, k.ed.Public()), Algorithms: []string{"HS256"}})
	wantErrContains(t, err, "Ed25519")
	_, err = loadKey(0, Key{Secret: string(k.secret), Algorithms: []string{"RS256"}})
	wantErrContains(t, err, "not allowed for an HMAC secret")
}

// TestEmbeddedJWKIgnored: keys named by the token itself (jwk, jku) are
// never trusted.
func TestEmbeddedJWKIgnored(t *testing.T) {
	k := keys(t)
	clk := newClock()
	v := newTestVerifier(t, Options{Keys: []Key{{PublicKeyPEM: pubPEM(t, &k.rsa.PublicKey)}}, Now: clk.Now})
	tk := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "m", "exp": clk.Now().Add(time.Minute).Unix()})
	tk.Header["jwk"] = map[string]any{"kty": "RSA", "n": base64.RawURLEncoding.EncodeToString(k.rsa2.N.Bytes()), "e": "AQAB"}
	tk.Header["jku"] = "https://attacker.invalid/jwks"
	tok, err := tk.SignedString(k.rsa2)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), tok)
	wantReason(t, err, ReasonBadSignature)
}

func TestVerifyReasons(t *testing.T) {
	k := keys(t)
	clk := newClock()
	now := clk.Now()
	opts := Options{
		Keys: []Key{
			{ID: "hs", Secret: "base64:" + base64.StdEncoding.EncodeToString(k.secret)},
			{ID: "rs", PublicKeyPEM: pubPEM(t, &k.rsa.PublicKey)},
		},
		Issuer:   "https://idp.example",
		Audience: []string{"wsgate", "chat"},
		Now:      clk.Now,
	}
	v := newTestVerifier(t, opts)
	hs := mustSigner(t, "HS256", k.secret, "hs", clk)
	good := map[string]any{"iss": "https://idp.example", "aud": "chat"}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v // nil makes Mint drop the claim
		}
		return m
	}
	tok := mint(t, hs, "alice", time.Minute, good)
	parts := strings.Split(tok, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"root","exp":9999999999}`)) + "." + parts[2]

	wrongSecret := mustSigner(t, "HS256", []byte("another-secret-that-is-32-bytes!"), "hs", clk)
	es := mustSigner(t, "ES256", k.ec256, "", clk)
	rsOther := mustSigner(t, "RS256", k.rsa2, "rs", clk)
	unknownKid := mustSigner(t, "HS256", k.secret, "nope", clk)
	rsWithHSKid := mustSigner(t, "RS256", k.rsa, "hs", clk)

	cases := []struct {
		name, token, reason string
	}{
		{"empty", "", ReasonMalformed},
		{"garbage", "not a jwt", ReasonMalformed},
		{"three junk parts", "a.b.c", ReasonMalformed},
		{"too long", strings.Repeat("a", MaxTokenBytes+1), ReasonMalformed},
		{"bad json header", "ew." + parts[1] + "." + parts[2], ReasonMalformed},
		{"crit header", rawToken(map[string]any{"alg": "HS256", "crit": []string{"x"}, "x": 1}, good, []byte("s")), ReasonMalformed},
		{"kid not string", rawToken(map[string]any{"alg": "HS256", "kid": 7}, good, []byte("s")), ReasonMalformed},
		{"unknown alg", rawToken(map[string]any{"alg": "HS999"}, good, []byte("s")), ReasonAlgNotAllowed},
		{"missing alg", rawToken(map[string]any{"typ": "JWT"}, good, []byte("s")), ReasonAlgNotAllowed},
		{"alg no key allows", mint(t, es, "alice", time.Minute, good), ReasonAlgNotAllowed},
		{"alg not allowed for kid", mint(t, rsWithHSKid, "alice", time.Minute, good), ReasonAlgNotAllowed},
		{"unknown kid", mint(t, unknownKid, "alice", time.Minute, good), ReasonUnknownKey},
		{"wrong secret", mint(t, wrongSecret, "alice", time.Minute, good), ReasonBadSignature},
		{"wrong rsa key", mint(t, rsOther, "alice", time.Minute, good), ReasonBadSignature},
		{"tampered payload", tampered, ReasonBadSignature},
		{"expired", mint(t, hs, "alice", time.Minute, with(map[string]any{"exp": now.Add(-time.Minute).Unix(), "iat": now.Add(-2 * time.Minute).Unix()})), ReasonExpired},
		{"not yet valid", mint(t, hs, "alice", time.Minute, with(map[string]any{"nbf": now.Add(30 * time.Second).Unix()})), ReasonNotYetValid},
		{"issued in future", mint(t, hs, "alice", time.Minute, with(map[string]any{"iat": now.Add(30 * time.Second).Unix(), "nbf": nil})), ReasonIssuedInFuture},
		{"missing exp", mint(t, hs, "alice", time.Minute, with(map[string]any{"exp": nil})), ReasonMissingExp},
		{"exp not a number", mint(t, hs, "alice", time.Minute, with(map[string]any{"exp": "tomorrow"})), ReasonMalformed},
		{"lifetime via iat", mint(t, hs, "alice", 25*time.Hour, good), ReasonLifetimeTooLong},
		{"lifetime no iat", mint(t, hs, "alice", 25*time.Hour, with(map[string]any{"iat": nil})), ReasonLifetimeTooLong},
		{"wrong issuer", mint(t, hs, "alice", time.Minute, with(map[string]any{"iss": "https://evil"})), ReasonWrongIssuer},
		{"missing issuer", mint(t, hs, "alice", time.Minute, with(map[string]any{"iss": nil})), ReasonWrongIssuer},
		{"wrong audience", mint(t, hs, "alice", time.Minute, with(map[string]any{"aud": []string{"other", "x"}})), ReasonWrongAudience},
		{"missing audience", mint(t, hs, "alice", time.Minute, with(map[string]any{"aud": nil})), ReasonWrongAudience},
		{"audience wrong type", mint(t, hs, "alice", time.Minute, with(map[string]any{"aud": 5})), ReasonWrongAudience},
		{"missing subject", mint(t, hs, "alice", time.Minute, with(map[string]any{"sub": nil})), ReasonMissingSubject},
		{"empty subject", mint(t, hs, "", time.Minute, good), ReasonMissingSubject},
		{"numeric subject", mint(t, hs, "alice", time.Minute, with(map[string]any{"sub": 42})), ReasonMissingSubject},
		{"huge subject", mint(t, hs, strings.Repeat("s", 2000), time.Minute, good), ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), tc.token)
			wantReason(t, err, tc.reason)
			if id.Subject != "" {
				t.Fatalf("identity returned with error: %+v", id)
			}
			if tc.token != "" && len(tc.token) > 20 && strings.Contains(err.Error(), tc.token) {
				t.Fatal("error message contains the token")
			}
		})
	}
	// Audience list: a token holding any accepted audience passes.
	for _, aud := range []any{"wsgate", []string{"x", "wsgate"}, []string{"chat"}} {
		if _, err := v.Verify(context.Background(), mint(t, hs, "alice", time.Minute, with(map[string]any{"aud": aud}))); err != nil {
			t.Fatalf("aud %v: %v", aud, err)
		}
	}
}

func TestLeewayEdges(t *testing.T) {
	k := keys(t)
	clk := newClock()
	now := clk.Now()
	v := newTestVerifier(t, Options{Keys: []Key{{Secret: string(k.secret)}}, Leeway: 5 * time.Second, Now: clk.Now})
	hs := mustSigner(t, "HS256", k.secret, "", clk)
	sec := func(d time.Duration) int64 { return now.Add(d).Unix() }
	cases := []struct {
		name   string
		claims map[string]any
		reason string // "" = accepted
	}{
		{"exp within leeway", map[string]any{"iat": sec(-time.Minute), "exp": sec(-4 * time.Second)}, ""},
		{"exp at leeway", map[string]any{"iat": sec(-time.Minute), "exp": sec(-5 * time.Second)}, ReasonExpired},
		{"exp past leeway", map[string]any{"iat": sec(-time.Minute), "exp": sec(-6 * time.Second)}, ReasonExpired},
		{"nbf at leeway", map[string]any{"nbf": sec(5 * time.Second)}, ""},
		{"nbf past leeway", map[string]any{"nbf": sec(6 * time.Second)}, ReasonNotYetValid},
		{"iat at leeway", map[string]any{"nbf": nil, "iat": sec(5 * time.Second)}, ""},
		{"iat past leeway", map[string]any{"nbf": nil, "iat": sec(6 * time.Second)}, ReasonIssuedInFuture},
		{"lifetime exactly max", map[string]any{"iat": sec(0), "exp": sec(24 * time.Hour)}, ""},
		{"lifetime max+1s", map[string]any{"iat": sec(0), "exp": sec(24*time.Hour + time.Second)}, ReasonLifetimeTooLong},
		{"fractional exp", map[string]any{"exp": float64(now.Unix()) + 30.5}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			claims := map[string]any{}
			for k, v := range tc.claims {
				claims[k] = v
			}
			tok, err := hs.Mint("alice", time.Minute, claims)
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(context.Background(), tok)
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantReason(t, err, tc.reason)
		})
	}
}

func TestSubjectClaimAndMultipleKeys(t *testing.T) {
	k := keys(t)
	clk := newClock()
	other := []byte("ffffffffffffffffffffffffffffffffffffffff")
	v := newTestVerifier(t, Options{
		Keys:         []Key{{Secret: string(other)}, {Secret: string(k.secret)}},
		SubjectClaim: "email",
		Now:          clk.Now,
	})
	hs := mustSigner(t, "HS256", k.secret, "", clk)
	id, err := v.Verify(context.Background(), mint(t, hs, "ignored", time.Minute, map[string]any{"email": "a@b.c"}))
	if err != nil || id.Subject != "a@b.c" {
		t.Fatalf("id=%+v err=%v", id, err)
	}
	_, err = v.Verify(context.Background(), mint(t, hs, "x", time.Minute, nil))
	wantReason(t, err, ReasonMissingSubject)
}

func TestTooManyCandidates(t *testing.T) {
	clk := newClock()
	var ks []Key
	for i := range maxCandidates + 1 {
		ks = append(ks, Key{Secret: strings.Repeat(string(rune('a'+i)), 32)})
	}
	v := newTestVerifier(t, Options{Keys: ks, Now: clk.Now})
	s := mustSigner(t, "HS256", []byte(ks[0].Secret), "", clk)
	_, err := v.Verify(context.Background(), mint(t, s, "a", time.Minute, nil))
	wantReason(t, err, ReasonUnknownKey)
}

func TestKeyLoadErrors(t *testing.T) {
	k := keys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	privDER, _ := x509MarshalPKCS8(k.ec256)
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"no keys", Options{}, "set auth.keys or auth.jwks_url"},
		{"short secret", Options{Keys: []Key{{Secret: string(k.secret)}, {Secret: "base64:" + base64.StdEncoding.EncodeToString([]byte("twelve bytes"))}}},
			"auth.keys[1].secret: must decode to at least 32 bytes, got 12"},
		{"short raw secret", Options{Keys: []Key{{Secret: "short"}}}, "auth.keys[0].secret: must decode to at least 32 bytes, got 5"},
		{"bad base64", Options{Keys: []Key{{Secret: "base64:!!!"}}}, "auth.keys[0].secret: invalid base64"},
		{"hs512 short", Options{Keys: []Key{{Secret: string(k.secret), Algorithms: []string{"HS512"}}}}, "HS512 needs a secret of at least 64 bytes"},
		{"two materials", Options{Keys: []Key{{Secret: string(k.secret), PublicKeyPEM: "x"}}}, "exactly one of"},
		{"none", Options{Keys: []Key{{}}}, "exactly one of"},
		{"dup kid", Options{Keys: []Key{{ID: "a", Secret: string(k.secret)}, {ID: "a", Secret: string(k.secret)}}}, "auth.keys[1].id: duplicate kid"},
		{"not pem", Options{Keys: []Key{{PublicKeyPEM: "hello"}}}, "auth.keys[0].public_key_pem: no PEM block"},
		{"private pem", Options{Keys: []Key{{PublicKeyPEM: pemBlock("PRIVATE KEY", privDER)}}}, "private key"},
		{"small rsa", Options{Keys: []Key{{PublicKeyPEM: pubPEM(t, &small.PublicKey)}}}, "RSA key has 1024 bits"},
		{"missing file", Options{Keys: []Key{{PublicKeyFile: "/nonexistent/key.pem"}}}, "auth.keys[0].public_key_file: key file: open /nonexistent/key.pem"},
		{"negative leeway", Options{Keys: []Key{{Secret: string(k.secret)}}, Leeway: -1}, "auth.leeway: must not be negative"},
		{"empty audience", Options{Keys: []Key{{Secret: string(k.secret)}}, Audience: []string{""}}, "auth.audience[0]"},
		{"http jwks", Options{JWKSURL: "http://idp.example/jwks"}, "auth.jwks_url: must be https"},
		{"ftp jwks", Options{JWKSURL: "ftp://idp.example/jwks"}, "auth.jwks_url: must be an https URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.opts.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate err = %v, want %q", err, tc.want)
			}
			_, err := NewVerifier(context.Background(), tc.opts, nil)
			wantErrContains(t, err, tc.want)
		})
	}
}

func TestParseSecretForms(t *testing.T) {
	raw := make([]byte, 40)
	for i := range raw {
		raw[i] = byte(250 - i) // forces +/ vs -_ differences
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		got, err := ParseSecret("base64:" + enc.EncodeToString(raw))
		if err != nil || string(got) != string(raw) {
			t.Fatalf("%v: %v", enc, err)
		}
	}
	s := NewSecret()
	got, err := ParseSecret(s)
	if err != nil || len(got) != 32 || FormatSecret(got) != s {
		t.Fatalf("NewSecret round trip: %q %v", s, err)
	}
	if got, err := ParseSecret(strings.Repeat("x", 32)); err != nil || len(got) != 32 {
		t.Fatal("raw secret", err)
	}
}

func TestPublicKeyFileAndForms(t *testing.T) {
	k := keys(t)
	clk := newClock()
	dir := t.TempDir()
	file := dir + "/rsa.pem"
	if err := writeFile(file, pemBlock("RSA PUBLIC KEY", x509MarshalPKCS1(&k.rsa.PublicKey))); err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, Options{Keys: []Key{{PublicKeyFile: file, Algorithms: []string{"RS256"}}}, Now: clk.Now})
	if _, err := v.Verify(context.Background(), mint(t, mustSigner(t, "RS256", k.rsa, "", clk), "a", time.Minute, nil)); err != nil {
		t.Fatal(err)
	}
	// PS256 not in this key's allow-list.
	_, err := v.Verify(context.Background(), mint(t, mustSigner(t, "PS256", k.rsa, "", clk), "a", time.Minute, nil))
	wantReason(t, err, ReasonAlgNotAllowed)
}
