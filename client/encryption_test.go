package client_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/state/encrypt"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

var vaultClaims = map[string]any{"channels": map[string]any{"sub": []string{"vault:*"}, "pub": []string{"vault:*"}}}

// TestEncryptionKeyRotation: SetEncryptionKeys rotates mid-stream without a
// loss (readers learn the new key first, then the sender seals with it);
// history spans both keys; once the old key is retired what it sealed is an
// ErrNotEncrypted, never garbage.
func TestEncryptionKeyRotation(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Channels.Namespaces["vault"] = config.Namespace{ClientPublish: true, HistorySize: 50, HistoryTTL: time.Minute, Encryption: "end_to_end"}
	s := wsgatetest.Start(t, cfg)
	k1 := client.EncryptionKey{ID: "app1", Secret: []byte(strings.Repeat("a", 32))}
	k2 := client.EncryptionKey{ID: "app2", Secret: []byte(strings.Repeat("b", 32))}
	vault := func(ch string) bool { return strings.HasPrefix(ch, "vault:") }
	dialE2E := func(sub string, r *recorder, keys ...client.EncryptionKey) *client.Client {
		o := opts(s, func(context.Context) (string, error) { return s.Token(t, sub, vaultClaims), nil }, r)
		if keys != nil {
			o.Encryption = &client.Encryption{Keys: keys, Channels: vault}
		}
		return dial(t, s, o)
	}
	rr, rs := newRecorder(), newRecorder()
	rx := dialE2E("rx", rr, k1)
	tx := dialE2E("tx", nil, k1)
	spy := dialE2E("spy", nil)
	if err := spy.SetEncryptionKeys([]client.EncryptionKey{k1}); err == nil {
		t.Fatal("SetEncryptionKeys on a client without Encryption")
	}
	const ch = "vault:rotate"
	for _, c := range []struct {
		c *client.Client
		r *recorder
	}{{rx, rr}, {spy, rs}} {
		if _, err := c.c.Subscribe(ctxT(t), ch, c.r.subOpts()); err != nil {
			t.Fatal(err)
		}
	}
	publishN(t, tx, ch, "m", 3)
	if err := rx.SetEncryptionKeys([]client.EncryptionKey{k1, k2}); err != nil {
		t.Fatal(err)
	}
	if err := tx.SetEncryptionKeys([]client.EncryptionKey{k2, k1}); err != nil {
		t.Fatal(err)
	}
	if err := tx.SetEncryptionKeys([]client.EncryptionKey{{ID: "short", Secret: []byte("x")}}); err == nil {
		t.Fatal("a short secret was accepted")
	}
	for i := 4; i <= 6; i++ {
		if _, err := tx.Publish(ctxT(t), ch, map[string]any{"text": "m" + string(rune('0'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	rr.expectTexts(t, published("m", 6)...)
	var ids []string
	for range 6 {
		var m client.Message
		select {
		case m = <-rs.msgs:
		case <-time.After(wait):
			t.Fatalf("the keyless client got %d of 6 messages", len(ids))
		}
		var b64 string
		if err := json.Unmarshal(m.Payload, &b64); err != nil {
			t.Fatalf("keyless payload %s", m.Payload)
		}
		env, _ := base64.StdEncoding.DecodeString(b64)
		id, _, _, err := encrypt.Parse(env)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if strings.Join(ids, ",") != "app1,app1,app1,app2,app2,app2" {
		t.Fatalf("sealing key ids %v", ids)
	}
	h, err := rx.History(ctxT(t), ch, nil)
	if err != nil || len(h.Publications) != 6 {
		t.Fatalf("history: %v %v", h, err)
	}
	if err := rx.SetEncryptionKeys([]client.EncryptionKey{k2}); err != nil {
		t.Fatal(err)
	}
	if _, err := rx.History(ctxT(t), ch, nil); !errors.Is(err, client.ErrNotEncrypted) {
		t.Fatalf("history after retiring app1: %v", err)
	}
	h, err = rx.History(ctxT(t), ch, &client.HistoryOptions{Since: &client.Position{Offset: 3, Epoch: h.Epoch}})
	if err != nil || len(h.Publications) != 3 {
		t.Fatalf("history since 3: %v %v", h, err)
	}
}
