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

// A namespace without hooks or limits has no Checks, so the room calls no
// hook code for it, even when another namespace has rules; and a namespace
// whose rules pass costs no allocation.
func TestHookSetNoRulesNoAlloc(t *testing.T) {
	hs := &hookSet{ns: map[string]*nsRules{}}
	hs.ns["game"] = &nsRules{hs: hs, limits: config.RoomLimits{MaxMessageBytes: 100}}
	cfg := &config.Config{Channels: config.Channels{Namespaces: map[string]config.Namespace{"game": {}, "chat": {}}}}
	ns := roomNamespaces(cfg, hs)
	if ns["chat"].Checks != nil {
		t.Fatal("a namespace without rules has Checks")
	}
	game := ns["game"].Checks
	if game == nil {
		t.Fatal("the namespace with rules has no Checks")
	}
	payload := []byte(`{"text":"hi"}`)
	ctx := context.Background()
	n := testing.AllocsPerRun(1000, func() {
		if _, e := game.CheckPublish(ctx, fakeClient{}, "game:g1", payload); e != nil {
			t.Fatal(e)
		}
		if e := game.CheckSubscribe(ctx, fakeClient{}, "game:g1"); e != nil {
			t.Fatal(e)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per passing publish+subscribe, want 0", n)
	}
	if ns := roomNamespaces(cfg, nil); ns["game"].Checks != nil {
		t.Fatal("no hook set, yet Checks")
	}
}
