package server

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/session"
	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/route/room"
	"github.com/wsgate/wsgate/internal/state/encrypt"
)

// devKeyID names the random key a --dev server makes when none is configured.
const devKeyID = "dev-ephemeral"

// encryptionPolicy builds the encryption policy of cfg: the keyring of
// encryption.keys and the namespaces that seal, the end_to_end namespaces and
// the keys delivered to their clients (encryption.end_to_end_keys). A dev server without keys gets
// one random key per process (prev's, on reload), so dev history is readable
// only while it runs.
func encryptionPolicy(cfg *config.Config, prev *encrypt.Policy) (*encrypt.Policy, error) {
	p := &encrypt.Policy{Namespaces: map[string]bool{}, EndToEnd: map[string]bool{}}
	for name, ns := range cfg.Channels.Namespaces {
		switch ns.Encryption {
		case "at_rest":
			p.Namespaces[name] = true
		case "end_to_end":
			p.EndToEnd[name] = true
		}
	}
	keys, err := parseEncryptionKeys("encryption.keys", cfg.Encryption.Keys)
	if err != nil {
		return nil, err
	}
	if p.ClientKeys, err = parseEncryptionKeys("encryption.end_to_end_keys", cfg.Encryption.EndToEndKeys); err != nil {
		return nil, err
	}
	if len(p.ClientKeys) > 0 {
		// The same checks as a keyring's (ids, lengths, duplicates).
		if _, err := encrypt.NewKeyring(p.ClientKeys...); err != nil {
			return nil, fmt.Errorf("encryption.end_to_end_keys: %w", err)
		}
	}
	switch {
	case len(keys) > 0:
		r, err := encrypt.NewKeyring(keys...)
		if err != nil {
			return nil, fmt.Errorf("encryption.keys: %w", err)
		}
		p.Keyring = r
	case cfg.Dev && prev != nil && prev.Keyring != nil:
		p.Keyring = prev.Keyring
	case cfg.Dev && len(p.Namespaces) > 0:
		sec, _ := auth.ParseSecret(auth.NewSecret())
		r, err := encrypt.NewKeyring(encrypt.Key{ID: devKeyID, Secret: sec})
		if err != nil {
			return nil, err
		}
		p.Keyring = r
	case len(p.Namespaces) > 0:
		return nil, fmt.Errorf("channels.namespaces: encryption at_rest needs encryption.keys")
	}
	return p, nil
}

// parseEncryptionKeys reads "<id>=<secret>" entries of field. Errors name the
// entry by index and id, never its secret.
func parseEncryptionKeys(field string, entries []string) ([]encrypt.Key, error) {
	var keys []encrypt.Key
	for i, entry := range entries {
		id, secret, ok := config.EncryptionKey(entry)
		if !ok {
			return nil, fmt.Errorf("%s[%d]: must be \"<id>=<secret>\"", field, i)
		}
		sec, err := auth.ParseSecret(secret)
		if err != nil {
			return nil, fmt.Errorf("%s[%d] (%s): %w", field, i, id, err)
		}
		keys = append(keys, encrypt.Key{ID: id, Secret: sec})
	}
	return keys, nil
}

// logEncryption says at start and reload what is sealed and under which key id
// (never a key). The attribute names avoid "key": the redactor masks those.
func (s *Server) logEncryption(p *encrypt.Policy) {
	if len(p.EndToEnd) > 0 {
		ids := make([]string, len(p.ClientKeys))
		for i, k := range p.ClientKeys {
			ids[i] = k.ID
		}
		s.log.Info("encryption end_to_end", "namespaces", sortedNames(p.EndToEnd), "ticket_delivers", ids)
	}
	if len(p.Namespaces) == 0 {
		return
	}
	s.log.Info("encryption at_rest", "namespaces", sortedNames(p.Namespaces), "seals_with", p.Keyring.SealingKeyID(), "opens_with", p.Keyring.KeyIDs())
	if p.Keyring.SealingKeyID() == devKeyID {
		s.log.Warn("encryption at_rest uses a random --dev key: history sealed by this process cannot be read after it exits")
	}
}

func sortedNames(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// ticketEncryptionKeys returns the end-to-end keys the ticket endpoint hands the
// holder of id's token: derived from encryption.end_to_end_keys for exactly the
// end_to_end channels its channel claim grants (sub or pub), read by the room's
// own pattern matcher. Nil without end_to_end_keys. The keys are never logged:
// nothing here passes them to a logger, and they are not added to the redactor
// either (up to 256 per ticket would churn its bounded set of run-time secrets).
func (s *Server) ticketEncryptionKeys(id auth.Identity) []encrypt.DeliveredKey {
	if s.enc == nil {
		return nil
	}
	p := s.enc.Policy()
	if len(p.ClientKeys) == 0 {
		return nil
	}
	claim := s.config().Channels.Claim
	if claim == "" {
		claim = room.DefaultChannelClaim
	}
	patterns := append(room.Patterns(id.Claims, claim, "sub"), room.Patterns(id.Claims, claim, "pub")...)
	keys, err := p.KeysFor(patterns, room.MatchPattern)
	if err != nil {
		s.log.Warn("end-to-end keys not delivered", "err", err)
		return nil
	}
	return keys
}

// auditMessage records a sampled client message. A publication into an encrypted
// namespace is recorded without its body — the audit log is exactly the kind of
// copy at_rest keeps plaintext out of — but with the key id that seals it.
func (o *observer) auditMessage(s *session.Session, typ string, data []byte) {
	if !o.audit.SampleMessage() {
		return
	}
	if o.enc != nil {
		if p := o.enc.Policy(); len(p.Namespaces) > 0 && carriesPayload(typ) {
			ch := messageChannel(data)
			if ch == "" {
				ch = (*Server)(o).config().Channels.DefaultChannel
			}
			if p.Encrypted(ch) {
				keyID := ""
				if p.Keyring != nil {
					keyID = p.Keyring.SealingKeyID()
				}
				o.audit.LogSealedMessage(s.ID(), s.User(), typ, ch, keyID, len(data))
				return
			}
		}
	}
	o.audit.LogSampledMessage(s.ID(), s.User(), typ, data)
}

// carriesPayload: the message types whose body is published into a channel.
func carriesPayload(typ string) bool { return typ == "publish" || typ == "chat" || typ == "data" }

// messageChannel is the "channel" member of an accepted client message ("" when
// absent). The pipeline has validated the frame; this second parse runs only for
// sampled messages while some namespace is encrypted.
func messageChannel(data []byte) string {
	var m struct {
		Channel string `json:"channel"`
	}
	_ = json.Unmarshal(data, &m)
	return strings.TrimSpace(m.Channel)
}

// checkEndToEnd refuses a message that would put anything but a client-sealed
// envelope into an end_to_end namespace: its payload must be one, and a chat
// "text" (plaintext by definition) is refused. The broker decorator checks the
// payload again on every publish path; this check gives the client a clear error.
func (s *Server) checkEndToEnd(typ string, channel, payload, text []byte) *protocol.Error {
	if s.enc == nil || !carriesPayload(typ) {
		return nil
	}
	p := s.enc.Policy()
	if len(p.EndToEnd) == 0 {
		return nil
	}
	var ch string
	if len(channel) > 0 {
		if json.Unmarshal(channel, &ch) != nil {
			return nil // the room reports the bad channel
		}
	} else {
		ch = s.config().Channels.DefaultChannel
	}
	if !p.IsEndToEnd(ch) {
		return nil
	}
	if len(text) > 0 {
		return &protocol.Error{Code: protocol.CodeInvalidMessage, Message: "end_to_end channel: send an encrypted payload, not text"}
	}
	if err := encrypt.CheckEndToEnd(payload); err != nil {
		return &protocol.Error{Code: protocol.CodeInvalidMessage, Message: "end_to_end channel: payload is not a valid envelope"}
	}
	return nil
}
