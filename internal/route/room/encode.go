package room

import (
	"encoding/json"
	"hash/maphash"

	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/state/broker"
)

func maphash64(s string) uint64 { return maphash.String(hashSeed, s) }

// messagePush is the server push for one publication; encoded once per
// publication and shared by every subscriber.
type messagePush struct {
	Type      string          `json:"type"`
	Channel   string          `json:"channel"`
	Offset    uint64          `json:"offset"`
	Epoch     string          `json:"epoch"`
	From      string          `json:"from,omitempty"`
	Timestamp int64           `json:"timestamp"`
	Payload   json.RawMessage `json:"payload"`
}

func encodePublication(p broker.Publication) ([]byte, error) {
	payload := json.RawMessage(p.Data)
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	return json.Marshal(messagePush{protocol.TypeMessage, p.Channel, p.Offset, p.Epoch, p.From, p.Time.UnixMilli(), payload})
}

type ack struct {
	Type      string          `json:"type"`
	Ref       json.RawMessage `json:"ref,omitempty"`
	Channel   string          `json:"channel,omitempty"`
	Offset    *uint64         `json:"offset,omitempty"`
	Epoch     *string         `json:"epoch,omitempty"`
	Recovered *bool           `json:"recovered,omitempty"`
}

func encodeAck(a ack) []byte {
	a.Type = protocol.TypeAck
	b, err := json.Marshal(a)
	if err != nil { // only an invalid ref could do this, and Handle drops those
		return []byte(`{"type":"ack"}`)
	}
	return b
}

func encodeRecoveryFailed(ch string, offset uint64, epoch string, ref []byte) []byte {
	b, err := json.Marshal(struct {
		Type    string          `json:"type"`
		Channel string          `json:"channel"`
		Offset  uint64          `json:"offset"`
		Epoch   string          `json:"epoch"`
		Ref     json.RawMessage `json:"ref,omitempty"`
	}{protocol.TypeRecoveryFailed, ch, offset, epoch, ref})
	if err != nil {
		return []byte(`{"type":"recovery_failed"}`)
	}
	return b
}
