package integrity

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

// hkdfInfoPrefix is the purpose label of derived per-user message keys.
const hkdfInfoPrefix = "wsgate-msg-v1|"

// MinMasterKeyLen is the shortest master key accepted (256 bits).
const MinMasterKeyLen = 32

// DeriveUserKey derives the 32-byte per-user HMAC key:
//
//	HKDF-SHA256(IKM = master, salt = kid, info = "wsgate-msg-v1|" + subject, L = 32)
//
// Binding the kid as salt makes keys from two master-key generations
// unrelated even if an operator reuses a secret under a new id by mistake.
func DeriveUserKey(master []byte, kid, subject string) []byte {
	k, err := hkdf.Key(sha256.New, master, []byte(kid), hkdfInfoPrefix+subject, 32)
	if err != nil {
		// Only possible for absurd lengths (L > 255*32); 32 is fixed.
		return nil
	}
	return k
}

// MasterKey is one generation of the hmac-mode server secret.
type MasterKey struct {
	ID     string // kid, sent in every envelope; short, not secret
	Secret []byte // at least MinMasterKeyLen random bytes
}

// KeyRing holds the master keys of hmac mode. The current key issues client
// keys; every listed key verifies, so clients holding a key from the previous
// generation keep working until they reconnect. A KeyRing is immutable.
type KeyRing struct {
	current string
	keys    map[string][]byte
}

// NewKeyRing builds a ring: current issues new client keys, older keys still
// verify. Key ids must be unique, non-empty and at most 128 bytes.
func NewKeyRing(current MasterKey, older ...MasterKey) (*KeyRing, error) {
	r := &KeyRing{current: current.ID, keys: make(map[string][]byte, 1+len(older))}
	for _, k := range append([]MasterKey{current}, older...) {
		if k.ID == "" || len(k.ID) > maxKidLen {
			return nil, fmt.Errorf("integrity: master key id %q: must be 1-%d bytes", k.ID, maxKidLen)
		}
		if len(k.Secret) < MinMasterKeyLen {
			return nil, fmt.Errorf("integrity: master key %q: secret shorter than %d bytes", k.ID, MinMasterKeyLen)
		}
		if _, dup := r.keys[k.ID]; dup {
			return nil, fmt.Errorf("integrity: master key id %q listed twice", k.ID)
		}
		r.keys[k.ID] = append([]byte(nil), k.Secret...)
	}
	return r, nil
}

// CurrentID is the kid new client keys are issued under.
func (r *KeyRing) CurrentID() string { return r.current }

// userKey derives subject's key under kid; ok is false for an unknown kid.
func (r *KeyRing) userKey(kid, subject string) ([]byte, bool) {
	m, ok := r.keys[kid]
	if !ok {
		return nil, false
	}
	return DeriveUserKey(m, kid, subject), true
}

// ClientKey is what the ticket/token endpoint returns to a client in hmac
// mode, over TLS only, as JSON: {"alg":"HS256","kid":"k2","key":"<base64url 32 bytes>"}.
// The key is a secret: never log it, never put it in a URL.
type ClientKey struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Key string `json:"key"`
}

// Issue derives subject's client key under the current master key.
func (r *KeyRing) Issue(subject string) (ClientKey, error) {
	if subject == "" {
		return ClientKey{}, errors.New("integrity: issue client key: empty subject")
	}
	k, _ := r.userKey(r.current, subject)
	return ClientKey{Alg: AlgHS256, Kid: r.current, Key: B64(k)}, nil
}
