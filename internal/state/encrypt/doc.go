// Package encrypt seals channel publications at rest (namespaces with
// `encryption: at_rest`): a Keyring of master keys with ids derives one AEAD key
// per channel and key id (HKDF-SHA256), and Broker decorates a broker.Broker so
// that everything leaving the node — history in memory or Redis, Redis streams,
// cross-node pub/sub — holds only sealed envelopes, while the node's own
// subscribers and history readers get plaintext back.
//
// Envelope (docs/encryption.md has a test vector, testdata/vector.json):
//
//	0x01 | len(key id) (1 byte) | key id | nonce (12 bytes) | AES-256-GCM ciphertext+tag
//
// The AEAD is AES-256-GCM from the standard library (golang.org/x/crypto is not a
// dependency of wsgate). Its additional data is the envelope header (version,
// key id length, key id) followed by the channel name: a sealed payload opens
// only in the channel it was sealed for, under the key id it names. Offsets and
// epochs are not bound (they are assigned by the broker after sealing), so a
// party who can write to Redis can replay or reorder envelopes within one channel,
// but cannot read them, forge them, or move them to another channel.
//
// A JSON payload never starts with byte 0x01, so sealed and plaintext payloads
// are told apart by their first byte; in an encrypted namespace a plaintext
// payload coming back from the broker is refused like a forged one.
package encrypt
