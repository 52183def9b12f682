package integrity_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/wsgate/wsgate/internal/conn/integrity"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

const vectorsPath = "testdata/vectors.json"

// Vectors is the shared test-vector file format (see docs/integrity.md).
type Vectors struct {
	Comment   string          `json:"comment"`
	Version   int             `json:"version"`
	HMAC      []MsgVector     `json:"hmac"`
	Pop       []MsgVector     `json:"pop"`
	Handshake []HSVector      `json:"pop_handshake"`
	Server    []ServerVector  `json:"server"`
	Invalid   []InvalidVector `json:"invalid"`
}

// MsgVector is one signed client message.
type MsgVector struct {
	Name string `json:"name"`
	// hmac only
	MasterKeyHex  string `json:"master_key_hex,omitempty"`
	HKDFSalt      string `json:"hkdf_salt,omitempty"`
	HKDFInfo      string `json:"hkdf_info,omitempty"`
	DerivedKeyB64 string `json:"derived_key_b64,omitempty"`
	// pop only
	PrivateHex string `json:"private_hex,omitempty"` // Ed25519 seed or P-256 scalar d (test keys!)
	JWK        string `json:"jwk,omitempty"`         // canonical public JWK JSON
	JKT        string `json:"jkt,omitempty"`
	// inputs
	Alg             string `json:"alg"`
	Kid             string `json:"kid"`
	Subject         string `json:"subject"`
	ConnID          string `json:"conn_id"`
	Type            string `json:"type"`
	Seq             uint64 `json:"seq"`
	TS              int64  `json:"ts"`
	NonceB64        string `json:"nonce_b64"`
	Body            string `json:"body"`
	SigningInputHex string `json:"signing_input_hex"`
	MACB64          string `json:"mac_b64"`
	Deterministic   bool   `json:"deterministic"` // false: P-256, only verify mac_b64
	Envelope        string `json:"envelope"`
}

// HSVector is one pop handshake proof.
type HSVector struct {
	Name            string `json:"name"`
	PrivateHex      string `json:"private_hex"`
	JWK             string `json:"jwk"`
	JWKB64          string `json:"pop_key"`
	JKT             string `json:"jkt"`
	Alg             string `json:"alg"`
	Host            string `json:"host"`
	Path            string `json:"path"`
	TS              int64  `json:"ts"`
	NonceB64        string `json:"nonce_b64"`
	SigningInputHex string `json:"signing_input_hex"`
	ProofB64        string `json:"proof_b64"`
	Deterministic   bool   `json:"deterministic"`
}

// ServerVector is one server-signed message.
type ServerVector struct {
	Name            string `json:"name"`
	SeedHex         string `json:"seed_hex"`
	Kid             string `json:"kid"`
	JWKS            string `json:"jwks"`
	TS              int64  `json:"ts"`
	Body            string `json:"body"`
	SigningInputHex string `json:"signing_input_hex"`
	SigB64          string `json:"sig_b64"`
	Envelope        string `json:"envelope"`
}

// InvalidVector must be rejected with Expect, using the keys of vector Base
// (hmac[0] or pop[0]) and its conn_id/subject/ts.
type InvalidVector struct {
	Name     string `json:"name"`
	Base     string `json:"base"`
	Envelope string `json:"envelope"`
	Expect   string `json:"expect"`
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

const (
	vecTS      = int64(1767225600123) // 2026-01-01T00:00:00.123Z
	vecSubject = "user:alice@example.com"
	vecConn    = "c_01JH8XK2Q9"
	vecMaster  = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	vecEdSeed  = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60" // RFC 8032 test 1
	vecP256D   = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721" // RFC 6979 A.2.5
	vecSrvSeed = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb" // RFC 8032 test 2
)

var vecBodies = []struct{ typ, body string }{
	{"chat.send", `{"type":"chat.send","room":"lobby","text":"héllo \"wsgate\" ✓ \u2028"}`},
	{"ping", `{ "type" : "ping" , "n": 1e3 }`},
}

func nonceN(i int) []byte {
	n := make([]byte, 16)
	for j := range n {
		n[j] = byte(16*i + j)
	}
	return n
}

func envelope(h integrity.Header, body, mac []byte) string {
	e := integrity.Envelope{Header: h, Body: body, MAC: mac}
	return string(e.Marshal())
}

func p256Key() *ecdsa.PrivateKey {
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), mustHex(vecP256D))
	if err != nil {
		panic(err)
	}
	return k
}

func signP256(k *ecdsa.PrivateKey, msg []byte) []byte {
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(nil, k, h[:])
	if err != nil {
		panic(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return sig
}

// buildVectors computes every vector from fixed inputs. P-256 signatures are
// randomised, so for those the previous file's signature is kept when it
// still verifies (old may be nil).
func buildVectors(t *testing.T, old *Vectors) *Vectors {
	t.Helper()
	v := &Vectors{Comment: "wsgate message integrity test vectors; all keys here are PUBLIC TEST KEYS. Format: docs/integrity.md", Version: 1}
	master := mustHex(vecMaster)
	for i, kid := range []string{"k2026-01", "k2026-02"} {
		b := vecBodies[i%len(vecBodies)]
		key := integrity.DeriveUserKey(master, kid, vecSubject)
		h := integrity.Header{Alg: integrity.AlgHS256, Kid: kid, Type: b.typ, Seq: uint64(7 + i), TS: vecTS, Nonce: nonceN(i)}
		in := integrity.SigningInput(h, vecSubject, vecConn, []byte(b.body))
		m := hmac.New(sha256.New, key)
		m.Write(in)
		mac := m.Sum(nil)
		v.HMAC = append(v.HMAC, MsgVector{
			Name: "hmac-" + kid, MasterKeyHex: vecMaster, HKDFSalt: kid, HKDFInfo: "wsgate-msg-v1|" + vecSubject,
			DerivedKeyB64: integrity.B64(key), Alg: h.Alg, Kid: kid, Subject: vecSubject, ConnID: vecConn,
			Type: h.Type, Seq: h.Seq, TS: h.TS, NonceB64: integrity.B64(h.Nonce), Body: b.body,
			SigningInputHex: hex.EncodeToString(in), MACB64: integrity.B64(mac), Deterministic: true,
			Envelope: envelope(h, []byte(b.body), mac),
		})
	}

	ed := ed25519.NewKeyFromSeed(mustHex(vecEdSeed))
	edPub, _ := integrity.PublicKeyFromEd25519(ed.Public().(ed25519.PublicKey))
	ec := p256Key()
	ecPub, _ := integrity.PublicKeyFromECDSA(&ec.PublicKey)
	type popKey struct {
		name, priv string
		pub        integrity.PublicKey
		sign       func([]byte) []byte
		det        bool
	}
	keys := []popKey{
		{"pop-ed25519", vecEdSeed, edPub, func(m []byte) []byte { return ed25519.Sign(ed, m) }, true},
		{"pop-p256", vecP256D, ecPub, func(m []byte) []byte { return signP256(ec, m) }, false},
	}
	// A non-deterministic signature (P-256) stored by an earlier run is kept
	// while it still verifies the same input, so regenerating does not churn
	// the vectors file.
	stored := map[string]string{} // name + input hex -> signature
	if old != nil {
		for _, o := range old.Pop {
			stored[o.Name+o.SigningInputHex] = o.MACB64
		}
		for _, o := range old.Handshake {
			stored[o.Name+o.SigningInputHex] = o.ProofB64
		}
	}
	stableSign := func(k popKey, in []byte) []byte {
		if !k.det {
			if s, err := integrity.UnB64(stored[k.name+hex.EncodeToString(in)]); err == nil && len(s) > 0 && k.pub.Verify(in, s) {
				return s
			}
		}
		return k.sign(in)
	}
	for i, k := range keys {
		b := vecBodies[i%len(vecBodies)]
		h := integrity.Header{Alg: k.pub.Alg(), Kid: k.pub.Thumbprint(), Type: b.typ, Seq: 1, TS: vecTS + int64(i), Nonce: nonceN(2 + i)}
		in := integrity.SigningInput(h, vecSubject, vecConn, []byte(b.body))
		sig := stableSign(k, in)
		v.Pop = append(v.Pop, MsgVector{
			Name: k.name, PrivateHex: k.priv, JWK: string(k.pub.JWK()), JKT: k.pub.Thumbprint(),
			Alg: h.Alg, Kid: h.Kid, Subject: vecSubject, ConnID: vecConn, Type: h.Type, Seq: h.Seq, TS: h.TS,
			NonceB64: integrity.B64(h.Nonce), Body: b.body, SigningInputHex: hex.EncodeToString(in),
			MACB64: integrity.B64(sig), Deterministic: k.det, Envelope: envelope(h, []byte(b.body), sig),
		})

		hsNonce := nonceN(4 + i)
		hin := integrity.HandshakeInput(k.pub.Alg(), k.pub.Thumbprint(), "ws.example.com:8443", "/ws/chat", vecTS, hsNonce)
		proof := stableSign(k, hin)
		v.Handshake = append(v.Handshake, HSVector{
			Name: k.name, PrivateHex: k.priv, JWK: string(k.pub.JWK()), JWKB64: integrity.B64(k.pub.JWK()),
			JKT: k.pub.Thumbprint(), Alg: k.pub.Alg(), Host: "ws.example.com:8443", Path: "/ws/chat", TS: vecTS,
			NonceB64: integrity.B64(hsNonce), SigningInputHex: hex.EncodeToString(hin), ProofB64: integrity.B64(proof),
			Deterministic: k.det,
		})
	}

	sk, err := integrity.SigningKeyFromSeed("srv-2026-01", mustHex(vecSrvSeed))
	if err != nil {
		t.Fatal(err)
	}
	ss, err := integrity.NewServerSigner(sk)
	if err != nil {
		t.Fatal(err)
	}
	sbody := `{"type":"chat.msg","room":"lobby","from":"bob","text":"signed by the server ✓"}`
	sin := integrity.ServerSigningInput(integrity.AlgEdDSA, sk.ID, vecTS, []byte(sbody))
	ssig := ed25519.Sign(sk.Private, sin)
	se := integrity.ServerEnvelope{Alg: integrity.AlgEdDSA, Kid: sk.ID, TS: vecTS, Body: []byte(sbody), Sig: ssig}
	v.Server = append(v.Server, ServerVector{
		Name: "server-ed25519", SeedHex: vecSrvSeed, Kid: sk.ID, JWKS: string(ss.JWKS()), TS: vecTS, Body: sbody,
		SigningInputHex: hex.EncodeToString(sin), SigB64: integrity.B64(ssig), Envelope: string(se.Marshal()),
	})

	v.Invalid = invalidVectors(v)
	return v
}

// invalidVectors derives rejections from the valid hmac[0] / pop[0] vectors.
func invalidVectors(v *Vectors) []InvalidVector {
	hv := v.HMAC[0]
	key, _ := integrity.UnB64(hv.DerivedKeyB64)
	nonce, _ := integrity.UnB64(hv.NonceB64)
	base := integrity.Header{Alg: hv.Alg, Kid: hv.Kid, Type: hv.Type, Seq: hv.Seq, TS: hv.TS, Nonce: nonce}
	sign := func(h integrity.Header, subject, conn string, body []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(integrity.SigningInput(h, subject, conn, body))
		return m.Sum(nil)
	}
	body := []byte(hv.Body)
	good := sign(base, hv.Subject, hv.ConnID, body)
	var out []InvalidVector
	add := func(name, env, expect string) {
		out = append(out, InvalidVector{Name: name, Base: hv.Name, Envelope: env, Expect: expect})
	}
	tampered := bytes.Replace(body, []byte("lobby"), []byte("lobbx"), 1)
	add("tampered-body", envelope(base, tampered, good), "bad_signature")
	h2 := base
	h2.Seq++
	add("tampered-seq", envelope(h2, body, good), "bad_signature")
	h3 := base
	h3.TS++
	add("tampered-ts", envelope(h3, body, good), "bad_signature")
	h4 := base
	h4.Nonce = nonceN(9)
	add("tampered-nonce", envelope(h4, body, good), "bad_signature")
	add("other-connection", envelope(base, body, sign(base, hv.Subject, "c_other", body)), "bad_signature")
	add("other-subject", envelope(base, body, sign(base, "user:mallory", hv.ConnID, body)), "bad_signature")
	h5 := base
	h5.Kid = "k-unknown"
	add("unknown-kid", envelope(h5, body, sign(h5, hv.Subject, hv.ConnID, body)), "bad_signature")
	h6 := base
	h6.Type = "chat.delete"
	add("type-mismatch", envelope(h6, body, sign(h6, hv.Subject, hv.ConnID, body)), "type_mismatch")
	dup := []byte(`{"type":"chat.send","type":"chat.send"}`)
	add("duplicate-body-member", envelope(base, dup, sign(base, hv.Subject, hv.ConnID, dup)), "bad_envelope")
	caseVar := []byte(`{"type":"chat.send","Type":"admin.kick"}`)
	add("case-variant-type", envelope(base, caseVar, sign(base, hv.Subject, hv.ConnID, caseVar)), "bad_envelope")
	add("unsigned", hv.Body, "unsigned")
	add("not-json", "hello", "bad_envelope")
	add("version-2", bytes.NewBuffer(bytes.Replace([]byte(hv.Envelope), []byte(`"v":1`), []byte(`"v":2`), 1)).String(), "bad_envelope")
	add("padded-nonce", bytes.NewBuffer(bytes.Replace([]byte(hv.Envelope), []byte(hv.NonceB64), []byte(hv.NonceB64+"=="), 1)).String(), "bad_envelope")
	add("extra-member", bytes.NewBuffer(bytes.Replace([]byte(hv.Envelope), []byte(`{"type"`), []byte(`{"x":1,"type"`), 1)).String(), "bad_envelope")
	return out
}

func loadVectors(t *testing.T) *Vectors {
	t.Helper()
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		return nil
	}
	var v Vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("parse %s: %v", vectorsPath, err)
	}
	return &v
}

func TestVectorsFileUpToDate(t *testing.T) {
	old := loadVectors(t)
	got := buildVectors(t, old)
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if *update {
		if err := os.WriteFile(vectorsPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if old == nil {
		t.Fatalf("%s missing; run go test -run TestVectorsFileUpToDate -update", vectorsPath)
	}
	want, _ := os.ReadFile(vectorsPath)
	if !bytes.Equal(want, b) {
		t.Fatalf("%s is stale; run go test -run TestVectorsFileUpToDate -update and review the diff", vectorsPath)
	}
}

// TestVectors runs the file (not the generator) through the verifier, the
// way any other implementation consumes it.
func TestVectors(t *testing.T) {
	v := loadVectors(t)
	if v == nil {
		t.Skip("no vectors file yet")
	}
	now := time.UnixMilli(vecTS)
	newVerifier := func(ring *integrity.KeyRing) *integrity.Verifier {
		ver, err := integrity.NewVerifier(integrity.Options{Keys: ring, Replay: integrity.NewMemoryReplayCache(1000), Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return ver
	}
	rings := map[string]*integrity.KeyRing{}
	for _, hv := range v.HMAC {
		t.Run(hv.Name, func(t *testing.T) {
			master := mustHex(hv.MasterKeyHex)
			key := integrity.DeriveUserKey(master, hv.HKDFSalt, hv.Subject)
			if integrity.B64(key) != hv.DerivedKeyB64 || hv.HKDFInfo != "wsgate-msg-v1|"+hv.Subject || hv.HKDFSalt != hv.Kid {
				t.Fatalf("derived key mismatch")
			}
			ring, err := integrity.NewKeyRing(integrity.MasterKey{ID: hv.Kid, Secret: master})
			if err != nil {
				t.Fatal(err)
			}
			rings[hv.Name] = ring
			ck, _ := ring.Issue(hv.Subject)
			if ck.Key != hv.DerivedKeyB64 || ck.Kid != hv.Kid {
				t.Fatalf("Issue = %+v", ck)
			}
			ver := newVerifier(ring)
			st, _ := ver.NewHMACConn(hv.Subject, hv.ConnID)
			env, err := integrity.ParseEnvelope([]byte(hv.Envelope))
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(integrity.SigningInput(env.Header, hv.Subject, hv.ConnID, env.Body)); got != hv.SigningInputHex {
				t.Fatalf("signing input\n got %s\nwant %s", got, hv.SigningInputHex)
			}
			body, typ, err := ver.Open(context.Background(), st, []byte(hv.Envelope))
			if err != nil || string(body) != hv.Body || typ != hv.Type {
				t.Fatalf("Open = %q %q %v", body, typ, err)
			}
		})
	}
	for _, pv := range v.Pop {
		t.Run(pv.Name, func(t *testing.T) {
			pk, err := integrity.CheckHandshakeKey(integrity.B64([]byte(pv.JWK)), pv.JKT)
			if err != nil {
				t.Fatal(err)
			}
			// Independent thumbprint from lestrrat-go/jwx.
			jk, err := jwk.ParseKey([]byte(pv.JWK))
			if err != nil {
				t.Fatal(err)
			}
			tp, err := jk.Thumbprint(crypto.SHA256)
			if err != nil || integrity.B64(tp) != pv.JKT {
				t.Fatalf("jwx thumbprint %s != %s (%v)", integrity.B64(tp), pv.JKT, err)
			}
			ver := newVerifier(nil)
			st, _ := ver.NewPopConn(pv.Subject, pv.ConnID, pk)
			body, typ, err := ver.Open(context.Background(), st, []byte(pv.Envelope))
			if err != nil || string(body) != pv.Body || typ != pv.Type {
				t.Fatalf("Open = %q %q %v", body, typ, err)
			}
			if pv.Alg == integrity.AlgES256 {
				// Check r||s also against the standard library's ASN.1 path.
				in := mustHex(pv.SigningInputHex)
				sig, _ := integrity.UnB64(pv.MACB64)
				h := sha256.Sum256(in)
				d := p256Key()
				if !ecdsa.Verify(&d.PublicKey, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
					t.Fatal("P-256 vector does not verify with the private key's public half")
				}
			}
		})
	}
	for _, hs := range v.Handshake {
		t.Run("handshake-"+hs.Name, func(t *testing.T) {
			ver := newVerifier(nil)
			nonce, _ := integrity.UnB64(hs.NonceB64)
			proof, _ := integrity.UnB64(hs.ProofB64)
			p := integrity.PopParams{Key: hs.JWKB64, TS: hs.TS, Nonce: nonce, Proof: proof}
			if _, err := ver.VerifyPopHandshake(context.Background(), p, hs.JKT, hs.Host, hs.Path); err != nil {
				t.Fatal(err)
			}
			if _, err := ver.VerifyPopHandshake(context.Background(), p, hs.JKT, hs.Host, hs.Path); integrity.CodeOf(err) != integrity.CodeReplay {
				t.Fatalf("second use: %v", err)
			}
		})
	}
	for _, sv := range v.Server {
		t.Run(sv.Name, func(t *testing.T) {
			keys, err := integrity.ParseJWKS([]byte(sv.JWKS))
			if err != nil {
				t.Fatal(err)
			}
			body, ts, err := integrity.VerifyServerMessage(keys, []byte(sv.Envelope))
			if err != nil || string(body) != sv.Body || ts != sv.TS {
				t.Fatalf("verify = %q %d %v", body, ts, err)
			}
		})
	}
	for _, iv := range v.Invalid {
		t.Run("invalid-"+iv.Name, func(t *testing.T) {
			var hv MsgVector
			for _, x := range v.HMAC {
				if x.Name == iv.Base {
					hv = x
				}
			}
			ring := rings[iv.Base]
			if ring == nil {
				t.Fatal("base vector missing")
			}
			ver := newVerifier(ring)
			st, _ := ver.NewHMACConn(hv.Subject, hv.ConnID)
			_, _, err := ver.Open(context.Background(), st, []byte(iv.Envelope))
			if got := string(integrity.CodeOf(err)); got != iv.Expect {
				t.Fatalf("code %q, want %q (%v)", got, iv.Expect, err)
			}
		})
	}
}
