package server

import (
	"context"
	"testing"

	"github.com/wsgate/wsgate/config"
)

type fakeClient struct{}

func (fakeClient) ConnID() string         { return "c1" }
func (fakeClient) User() string           { return "u" }
func (fakeClient) Claims() map[string]any { return nil }
func (fakeClient) Send([]byte) error      { return nil }

// A namespace without hooks or limits costs a lookup, no allocation, even
// when another namespace has them (with none anywhere, the room holds no
// check at all).
func TestHookSetNoRulesNoAlloc(t *testing.T) {
	hs := &hookSet{ns: map[string]*nsRules{"game": {limits: config.RoomLimits{MaxMessageBytes: 10}}}}
	payload := []byte(`{"text":"hi"}`)
	ctx := context.Background()
	n := testing.AllocsPerRun(1000, func() {
		if _, e := hs.checkPublish(ctx, fakeClient{}, "chat:lobby", payload); e != nil {
			t.Fatal(e)
		}
		if e := hs.checkSubscribe(ctx, fakeClient{}, "chat:lobby"); e != nil {
			t.Fatal(e)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per publish+subscribe in a namespace without hooks, want 0", n)
	}
}
