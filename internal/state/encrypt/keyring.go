package encrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
)

// Envelope layout constants.
const (
	Version        = 0x01 // first byte of every sealed payload
	NonceSize      = 12   // AES-GCM standard nonce
	TagSize        = 16   // AES-GCM tag
	MaxKeyIDLen    = 64
	MinSecretBytes = 32
	// infoPrefix is HKDF's info: the scheme and version, then the channel.
	infoPrefix = "wsgate-enc-v1|"
	// maxCachedAEADs bounds the per-(key id, channel) AEAD cache; past it the
	// cache starts over (deriving a key costs about a microsecond).
	maxCachedAEADs = 4096
)

var (
	// ErrMalformed means the bytes are not an envelope of a known version.
	ErrMalformed = errors.New("encrypt: malformed envelope")
	// ErrUnknownKey means the envelope names a key id the keyring does not hold
	// (a key removed from the configuration).
	ErrUnknownKey = errors.New("encrypt: unknown key id")
	// ErrOpen means authentication failed: tampered bytes, wrong channel or wrong key.
	ErrOpen = errors.New("encrypt: message authentication failed")
)

// Key is one master key: an id that travels in every envelope sealed under it,
// and a secret of at least MinSecretBytes that never leaves the node.
type Key struct {
	ID     string
	Secret []byte
}

// Keyring holds the configured master keys. The first seals; every key opens.
// It is safe for concurrent use.
type Keyring struct {
	keys []Key
	byID map[string][]byte
	// channel is set for a keyring of channel keys (NewChannelKeyring): the
	// secrets are that channel's AES keys, used as they are, and no other channel opens.
	channel string

	mu    sync.Mutex
	aeads map[aeadKey]cipher.AEAD
}

type aeadKey struct{ id, channel string }

// NewKeyring checks keys (non-empty, valid unique ids, long enough secrets) and
// returns a keyring sealing under keys[0].
func NewKeyring(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("encrypt: no key")
	}
	r := &Keyring{byID: make(map[string][]byte, len(keys)), aeads: make(map[aeadKey]cipher.AEAD)}
	for i, k := range keys {
		if err := ValidKeyID(k.ID); err != nil {
			return nil, fmt.Errorf("encrypt: key %d: %w", i, err)
		}
		if len(k.Secret) < MinSecretBytes {
			return nil, fmt.Errorf("encrypt: key %q: secret has %d bytes, needs at least %d", k.ID, len(k.Secret), MinSecretBytes)
		}
		if _, dup := r.byID[k.ID]; dup {
			return nil, fmt.Errorf("encrypt: key id %q listed twice", k.ID)
		}
		sec := append([]byte(nil), k.Secret...)
		r.byID[k.ID] = sec
		r.keys = append(r.keys, Key{ID: k.ID, Secret: sec})
	}
	return r, nil
}

// NewChannelKeyring returns a keyring of channel keys for channel (keys the
// ticket endpoint delivers for one channel, DeliveredKey.Channel): each secret
// is that channel's 32-byte data key, used without derivation.
func NewChannelKeyring(channel string, keys ...Key) (*Keyring, error) {
	for _, k := range keys {
		if len(k.Secret) != 32 {
			return nil, fmt.Errorf("encrypt: channel key %q has %d bytes, needs 32", k.ID, len(k.Secret))
		}
	}
	r, err := NewKeyring(keys...)
	if err != nil {
		return nil, err
	}
	r.channel = channel
	return r, nil
}

// ValidKeyID reports whether id can name a key: 1..64 of [A-Za-z0-9._-]. Ids are
// written into every envelope and into audit records, so they are kept printable.
func ValidKeyID(id string) error {
	if id == "" || len(id) > MaxKeyIDLen {
		return fmt.Errorf("key id must have 1 to %d characters", MaxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("key id %q: only letters, digits, '.', '_' and '-' are allowed", id)
		}
	}
	return nil
}

// SealingKeyID is the id new envelopes are sealed under.
func (r *Keyring) SealingKeyID() string { return r.keys[0].ID }

// KeyIDs lists every key id, the sealing one first.
func (r *Keyring) KeyIDs() []string {
	ids := make([]string, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.ID
	}
	return ids
}

// ChannelKey derives the data key of channel under master key secret with id:
// HKDF-SHA256(secret, salt = id, info = "wsgate-enc-v1|" + channel), 32 bytes.
func ChannelKey(secret []byte, id, channel string) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, secret, []byte(id), infoPrefix+channel, 32)
	if err != nil {
		return nil, fmt.Errorf("encrypt: derive channel key: %w", err)
	}
	return k, nil
}

func (r *Keyring) aead(id, channel string) (cipher.AEAD, error) {
	ak := aeadKey{id, channel}
	r.mu.Lock()
	a, ok := r.aeads[ak]
	r.mu.Unlock()
	if ok {
		return a, nil
	}
	secret, ok := r.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, id)
	}
	var k []byte
	switch {
	case r.channel == "":
		var err error
		if k, err = ChannelKey(secret, id, channel); err != nil {
			return nil, err
		}
	case channel == r.channel:
		k = secret
	default:
		return nil, fmt.Errorf("%w %q for channel %s", ErrUnknownKey, id, channel)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	a, err = cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	r.mu.Lock()
	if len(r.aeads) >= maxCachedAEADs {
		clear(r.aeads)
	}
	r.aeads[ak] = a
	r.mu.Unlock()
	return a, nil
}

// header appends the envelope header for id to dst.
func header(dst []byte, id string) []byte {
	dst = append(dst, Version, byte(len(id)))
	return append(dst, id...)
}

// additionalData is what the AEAD authenticates besides the ciphertext: the
// header, then the channel.
func additionalData(hdr []byte, channel string) []byte {
	ad := make([]byte, 0, len(hdr)+len(channel))
	ad = append(ad, hdr...)
	return append(ad, channel...)
}

// Seal returns plaintext sealed for channel under the sealing key, with a fresh
// random nonce, and that key's id.
func (r *Keyring) Seal(channel string, plaintext []byte) ([]byte, string, error) {
	var nonce [NonceSize]byte
	_, _ = rand.Read(nonce[:]) // crypto/rand.Read never fails (it aborts the process instead).
	return r.sealWithNonce(channel, plaintext, nonce[:])
}

func (r *Keyring) sealWithNonce(channel string, plaintext, nonce []byte) ([]byte, string, error) {
	id := r.keys[0].ID
	a, err := r.aead(id, channel)
	if err != nil {
		return nil, "", err
	}
	out := make([]byte, 0, 2+len(id)+NonceSize+len(plaintext)+TagSize)
	out = header(out, id)
	ad := additionalData(out, channel)
	out = append(out, nonce...)
	return a.Seal(out, nonce, plaintext, ad), id, nil
}

// Open returns the plaintext of an envelope sealed for channel, and the key id
// that sealed it. Errors wrap ErrMalformed, ErrUnknownKey or ErrOpen; no
// plaintext is returned with an error.
func (r *Keyring) Open(channel string, env []byte) ([]byte, string, error) {
	id, nonce, ct, err := Parse(env)
	if err != nil {
		return nil, "", err
	}
	a, err := r.aead(id, channel)
	if err != nil {
		return nil, id, err
	}
	pt, err := a.Open(nil, nonce, ct, additionalData(env[:2+len(id)], channel))
	if err != nil {
		return nil, id, ErrOpen
	}
	return pt, id, nil
}

// Parse splits an envelope into key id, nonce and ciphertext (with tag) without
// opening it. It never panics, whatever bytes it is given.
func Parse(env []byte) (id string, nonce, ciphertext []byte, err error) {
	if len(env) < 2 || env[0] != Version {
		return "", nil, nil, ErrMalformed
	}
	n := int(env[1])
	if n == 0 || n > MaxKeyIDLen || len(env) < 2+n+NonceSize+TagSize {
		return "", nil, nil, ErrMalformed
	}
	id = string(env[2 : 2+n])
	if ValidKeyID(id) != nil {
		return "", nil, nil, ErrMalformed
	}
	rest := env[2+n:]
	return id, rest[:NonceSize], rest[NonceSize:], nil
}

// IsSealed reports whether b looks like an envelope (first byte Version). JSON
// text never starts with that byte.
func IsSealed(b []byte) bool { return len(b) > 0 && b[0] == Version }
