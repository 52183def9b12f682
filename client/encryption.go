package client

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wsgate/wsgate/internal/encrypt"
)

// Encryption seals and opens the payloads of channels in `encryption: end_to_end`
// namespaces with keys the application supplies: wsgate relays and stores the
// envelopes without being able to read them (docs/encryption.md). Every client
// of a channel needs the same key ids and secrets.
type Encryption struct {
	// Keys: the first seals, every key opens. Secrets are at least 32 bytes.
	Keys []EncryptionKey
	// Channels reports whether a channel is end-to-end encrypted (typically: its
	// namespace is one of the end_to_end namespaces of the server's configuration).
	Channels func(channel string) bool
}

// EncryptionKey is one application master key; per-channel keys are derived
// from it (HKDF-SHA256, as for at_rest).
type EncryptionKey struct {
	ID     string
	Secret []byte
}

// ErrNotEncrypted means a payload of an end-to-end channel did not open: sealed
// under a key this client lacks, tampered, or not an envelope at all.
var ErrNotEncrypted = errors.New("client: end-to-end payload does not open")

func newE2E(o *Encryption) (*encrypt.Keyring, error) {
	if o == nil {
		return nil, nil
	}
	if o.Channels == nil {
		return nil, errors.New("client: Encryption.Channels is required")
	}
	keys := make([]encrypt.Key, len(o.Keys))
	for i, k := range o.Keys {
		keys[i] = encrypt.Key{ID: k.ID, Secret: k.Secret}
	}
	r, err := encrypt.NewKeyring(keys...)
	if err != nil {
		return nil, fmt.Errorf("client: Encryption: %w", err)
	}
	return r, nil
}

// SetEncryptionKeys replaces the end-to-end keys (rotation, docs/encryption.md):
// the first seals from now on, every listed key opens. The Client must have
// been dialled with DialOptions.Encryption.
func (c *Client) SetEncryptionKeys(keys []EncryptionKey) error {
	if c.e2e.Load() == nil {
		return errors.New("client: the client was dialled without Encryption")
	}
	r, err := newE2E(&Encryption{Keys: keys, Channels: c.o.Encryption.Channels})
	if err != nil {
		return err
	}
	c.e2e.Store(r)
	return nil
}

// e2eKeys returns the keyring sealing channel, nil when channel is not end-to-end.
func (c *Client) e2eKeys(channel string) *encrypt.Keyring {
	r := c.e2e.Load()
	if r == nil || !c.o.Encryption.Channels(channel) {
		return nil
	}
	return r
}

// sealPayload returns payload sealed for channel when channel is end-to-end.
func (c *Client) sealPayload(channel string, payload any) (any, error) {
	r := c.e2eKeys(channel)
	if r == nil {
		return rawOrValue(payload), nil
	}
	var pt []byte
	switch p := payload.(type) {
	case json.RawMessage:
		pt = p
	case []byte:
		pt = p
	default:
		b, err := json.Marshal(payload)
		if err != nil {
			return nil, fmt.Errorf("client: payload: %w", err)
		}
		pt = b
	}
	if !json.Valid(pt) {
		return nil, errors.New("client: payload must be JSON")
	}
	env, _, err := r.SealEndToEnd(channel, pt)
	if err != nil {
		return nil, fmt.Errorf("client: seal: %w", err)
	}
	return json.RawMessage(env), nil
}

// openPayload replaces m.Payload with its plaintext when its channel is
// end-to-end; an error means m must not be handed on.
func (c *Client) openPayload(m *Message) error {
	r := c.e2eKeys(m.Channel)
	if r == nil {
		return nil
	}
	pt, _, err := r.OpenEndToEnd(m.Channel, m.Payload)
	if err != nil {
		return fmt.Errorf("%w: %s offset %d: %w", ErrNotEncrypted, m.Channel, m.Offset, err)
	}
	m.Payload = pt
	return nil
}
