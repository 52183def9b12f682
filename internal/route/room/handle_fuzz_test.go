package room_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/wsgate/wsgate/internal/route/command"
	"github.com/wsgate/wsgate/internal/route/room"
)

// FuzzHandle throws arbitrary bodies at every message type: no panic, every reply
// valid JSON (fakeClient.Send checks), and Leave cleans up.
func FuzzHandle(f *testing.F) {
	seeds := []struct{ typ, id, raw string }{
		{"subscribe", "1", `{"channel":"chat:lobby"}`},
		{"subscribe", `"a"`, `{"channel":"chat:lobby","since":{"offset":3,"epoch":"x"}}`},
		{"subscribe", "", `{"channel":"chat:lobby","token":"t"}`},
		{"unsubscribe", "2", `{"channel":"chat:lobby"}`},
		{"publish", "3", `{"channel":"chat:lobby","payload":{"a":[1,2]}}`},
		{"chat", "4", `{"text":"hi \u2028"}`},
		{"data", "{", `{"payload":null}`},
		{"presence", "5", `{"channel":"chat:lobby"}`},
		{"history", "6", `{"channel":"chat:lobby","limit":-5,"since":{"offset":18446744073709551615}}`},
		{"command", "7", `{"name":"x","payload":{}}`},
		{"nope", "8", `{`},
	}
	for _, s := range seeds {
		f.Add(s.typ, s.id, s.raw)
	}
	e := start(f, room.Options{
		SubscriptionTokenVerify: func(context.Context, string) (map[string]any, error) {
			return map[string]any{"channel": "chat:lobby", "sub": "fuzz"}, nil
		},
		Commands: command.Func(func(ctx context.Context, req command.Request) (json.RawMessage, error) {
			return req.Payload, nil
		}),
	})
	f.Fuzz(func(t *testing.T, typ, id, raw string) {
		c := newClient("fuzz", "fuzz", []string{"*:*"}, []string{"*:*"})
		var idb []byte
		if id != "" {
			idb = []byte(id)
		}
		_ = e.s.Handle(context.Background(), c, typ, idb, []byte(raw))
		_ = e.s.Handle(context.Background(), c, "subscribe", idb, []byte(raw))
		e.s.Leave(context.Background(), c)
	})
}
