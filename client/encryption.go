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

func (c *Client) e2eChannel(channel string) bool {
	return c.e2e != nil && c.o.Encryption.Channels(channel)
}

// sealPayload returns payload sealed for channel when channel is end-to-end.
func (c *Client) sealPayload(channel string, payload any) (any, error) {
	if !c.e2eChannel(channel) {
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
	env, _, err := c.e2e.SealEndToEnd(channel, pt)
	if err != nil {
		return nil, fmt.Errorf("client: seal: %w", err)
	}
	return json.RawMessage(env), nil
}

// openPayload replaces m.Payload with its plaintext when its channel is
// end-to-end; an error means m must not be handed on.
func (c *Client) openPayload(m *Message) error {
	if !c.e2eChannel(m.Channel) {
		return nil
	}
	pt, _, err := c.e2e.OpenEndToEnd(m.Channel, m.Payload)
	if err != nil {
		return fmt.Errorf("%w: %s offset %d: %w", ErrNotEncrypted, m.Channel, m.Offset, err)
	}
	m.Payload = pt
	return nil
}
