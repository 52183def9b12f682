package encrypt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// End-to-end payloads (`encryption: end_to_end`): clients seal with keys wsgate
// does not hold, and the payload of a publication is the envelope, base64
// (standard alphabet, padded) in a JSON string. wsgate checks only that shape
// (CheckEndToEnd) and relays and stores it as is.

// MaxEnvelopeBytes bounds an end-to-end envelope (the message size limits bound
// it further).
const MaxEnvelopeBytes = 1 << 20

// CheckEndToEnd validates an end-to-end payload without opening it: a JSON
// string of base64 that decodes to an envelope with a valid key id, a nonce and
// at least a tag. It never panics, whatever it is given.
func CheckEndToEnd(payload []byte) error {
	_, err := decodeEndToEnd(payload)
	return err
}

func decodeEndToEnd(payload []byte) ([]byte, error) {
	if len(payload) < 2 || payload[0] != '"' || payload[len(payload)-1] != '"' {
		return nil, fmt.Errorf("%w: end-to-end payload must be a JSON string", ErrMalformed)
	}
	// Base64 needs no JSON escapes: take the string's bytes as they are, and
	// only a string with escapes (e.g. "\/") goes through the JSON decoder.
	b64 := payload[1 : len(payload)-1]
	if bytes.IndexByte(b64, '\\') >= 0 {
		var s string
		if json.Unmarshal(payload, &s) != nil {
			return nil, fmt.Errorf("%w: end-to-end payload must be a JSON string", ErrMalformed)
		}
		b64 = []byte(s)
	}
	if base64.StdEncoding.DecodedLen(len(b64)) > MaxEnvelopeBytes {
		return nil, fmt.Errorf("%w: envelope over %d bytes", ErrMalformed, MaxEnvelopeBytes)
	}
	env := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Strict().Decode(env, b64)
	env = env[:n]
	if err != nil {
		return nil, fmt.Errorf("%w: envelope is not base64", ErrMalformed)
	}
	if _, _, _, err := Parse(env); err != nil {
		return nil, err
	}
	return env, nil
}

// SealEndToEnd seals plaintext for channel and returns the payload to publish
// (a JSON string) and the sealing key id.
func (r *Keyring) SealEndToEnd(channel string, plaintext []byte) ([]byte, string, error) {
	env, id, err := r.Seal(channel, plaintext)
	if err != nil {
		return nil, "", err
	}
	b, err := json.Marshal(base64.StdEncoding.EncodeToString(env))
	if err != nil {
		return nil, "", fmt.Errorf("encrypt: %w", err)
	}
	return b, id, nil
}

// OpenEndToEnd opens a payload made by SealEndToEnd for channel.
func (r *Keyring) OpenEndToEnd(channel string, payload []byte) ([]byte, string, error) {
	env, err := decodeEndToEnd(payload)
	if err != nil {
		return nil, "", err
	}
	return r.Open(channel, env)
}
