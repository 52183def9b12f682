package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/wsgate/wsgate/internal/state/encrypt"
)

// Encryption seals and opens the payloads of channels in `encryption: end_to_end`
// namespaces, with keys the application supplies (Keys) or the ticket endpoint
// delivers (FromServer): wsgate relays and stores the envelopes without opening
// them (docs/encryption.md). Every client of a channel needs the same keys.
type Encryption struct {
	// Keys: the first seals, every key opens. Secrets are at least 32 bytes.
	Keys []EncryptionKey
	// Channels reports whether a channel is sealed with Keys (typically: its
	// namespace is one of the end_to_end namespaces of the server's
	// configuration). Required with Keys.
	Channels func(channel string) bool
	// FromServer fetches, at every connection, the keys the ticket endpoint
	// delivers for the end_to_end channels the token grants (the server needs
	// encryption.end_to_end_keys). Channels with delivered keys are sealed with
	// those, whatever Channels says.
	FromServer bool
}

// serverKeys are the keyrings of the last ticket reply (FromServer).
type serverKeys struct {
	namespaces, channels map[string]*encrypt.Keyring
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
	if o == nil || (len(o.Keys) == 0 && o.FromServer) {
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
	if c.o.Encryption == nil || c.o.Encryption.Channels == nil {
		return errors.New("client: the client was dialled without Encryption.Keys and Channels")
	}
	r, err := newE2E(&Encryption{Keys: keys, Channels: c.o.Encryption.Channels})
	if err != nil {
		return err
	}
	c.e2e.Store(r)
	return nil
}

// e2eKeys returns the keyring sealing channel, nil when channel is not
// end-to-end: the server's keys for the channel or its namespace first, then
// the application's.
func (c *Client) e2eKeys(channel string) *encrypt.Keyring {
	if d := c.delivered.Load(); d != nil {
		if r := d.channels[channel]; r != nil {
			return r
		}
		if ns, _, ok := strings.Cut(channel, ":"); ok && d.namespaces[ns] != nil {
			return d.namespaces[ns]
		}
	}
	r := c.e2e.Load()
	if r == nil || !c.o.Encryption.Channels(channel) {
		return nil
	}
	return r
}

// takeServerKeys keeps the end-to-end keys of a ticket reply (FromServer): a
// reply without keys clears them (the token grants none any more).
func (c *Client) takeServerKeys(raw json.RawMessage) error {
	var e struct {
		Keys []encrypt.DeliveredKey `json:"keys"`
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("client: ticket encryption keys: %w", err)
		}
	}
	ns, ch, err := encrypt.Keyrings(e.Keys)
	if err != nil {
		return fmt.Errorf("client: ticket encryption keys: %w", err)
	}
	c.delivered.Store(&serverKeys{namespaces: ns, channels: ch})
	return nil
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
