package room_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/route/room"
)

var everyone = []string{"chat:*"}

func TestTwoClientsSeeEachOther(t *testing.T) {
	e := start(t, room.Options{})
	alice := newClient("c1", "alice", everyone, everyone)
	bob := newClient("c2", "bob", everyone, everyone)
	e.subscribe(alice, "chat:lobby")
	e.subscribe(bob, "chat:lobby")
	alice.expect(t, "joined") // bob joined after alice

	// Delivery is synchronous with the broker's Publish, so the publisher sees its
	// own message before its ack.
	if err := e.handle(alice, "publish", 7, `{"channel":"chat:lobby","payload":{"hi":1}}`); err != nil {
		t.Fatal(err)
	}
	alice.expect(t, "message")
	ack := alice.expect(t, "ack")
	if ack.num("ref") != 7 || ack.num("offset") != 1 || ack.str("epoch") == "" {
		t.Fatalf("publish ack %v", ack)
	}
	for _, c := range []*fakeClient{bob} {
		m := c.expect(t, "message")
		if m.str("channel") != "chat:lobby" || m.str("from") != "alice" || m.num("offset") != 1 || m.num("timestamp") == 0 {
			t.Fatalf("%s got %v", c.id, m)
		}
		if p, _ := json.Marshal(m["payload"]); string(p) != `{"hi":1}` {
			t.Fatalf("payload %s", p)
		}
	}
	// chat goes to bob's current channel (the one he subscribed to last).
	if err := e.handle(bob, "chat", 8, `{"text":"hello <alice>"}`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*fakeClient{alice, bob} {
		m := c.expect(t, "message")
		if m.str("from") != "bob" || m["payload"].(map[string]any)["text"] != "hello <alice>" || m.num("offset") != 2 {
			t.Fatalf("%s got %v", c.id, m)
		}
	}
	bob.expect(t, "ack")
	// data without channel or current channel goes to the default channel.
	carol := newClient("c3", "carol", nil, everyone)
	e.mustHandle(carol, "data", 9, `{"payload":[1,2]}`)
	alice.expect(t, "message")
	bob.expect(t, "message")
	carol.quiet(t)

	// unsubscribe stops delivery.
	e.mustHandle(bob, "unsubscribe", 10, `{"channel":"chat:lobby"}`)
	alice.expect(t, "left")
	if _, err := e.s.Publish(context.Background(), "chat:lobby", json.RawMessage(`"x"`), ""); err != nil {
		t.Fatal(err)
	}
	alice.expect(t, "message")
	bob.quiet(t)
}

func TestDenials(t *testing.T) {
	e := start(t, room.Options{
		Namespaces: map[string]room.Namespace{
			"chat": {ClientPublish: true, HistorySize: 10, Presence: true},
			"news": {MaxSubscribers: 1},
		},
		MaxChannelsPerClient: 2,
	})
	limited := newClient("c1", "mallory", []string{"chat:lobby", "news:*", "chat:room.*"}, []string{"chat:lobby"})
	cases := []struct {
		typ, body, code string
		strike          bool
	}{
		{"subscribe", `{"channel":"chat:secret"}`, protocol.CodePermissionDenied, true},
		{"subscribe", `{"channel":"nope:x"}`, protocol.CodeUnknownNamespace, true},
		{"subscribe", `{"channel":"chat:bad channel"}`, protocol.CodeBadChannel, true},
		{"subscribe", `{"channel":"lobby"}`, protocol.CodeUnknownNamespace, true},
		{"publish", `{"channel":"chat:other","payload":1}`, protocol.CodePermissionDenied, true},
		{"publish", `{"channel":"news:today","payload":1}`, protocol.CodePublishDisabled, true},
		{"presence", `{"channel":"chat:lobby"}`, protocol.CodeNotSubscribed, true},
		{"history", `{"channel":"chat:lobby"}`, protocol.CodeNotSubscribed, true},
		{"presence", `{"channel":"news:x"}`, protocol.CodePresenceDisabled, false},
		{"unsubscribe", `{"channel":"chat:lobby"}`, protocol.CodeNotSubscribed, false},
		{"command", `{"name":"x"}`, protocol.CodeCommandUnavailable, false},
		{"bogus", ``, protocol.CodeUnknownType, true},
		{"subscribe", `{"channel":7}`, protocol.CodeBadRequest, true},
	}
	for i, tc := range cases {
		err := e.handle(limited, tc.typ, i, tc.body)
		if err == nil || err.Code != tc.code || err.Strike != tc.strike {
			t.Errorf("%s %s: got %v, want %s strike=%v", tc.typ, tc.body, err, tc.code, tc.strike)
			continue
		}
		m := limited.expect(t, "error")
		if m.str("code") != tc.code || m.num("ref") != uint64(i) || m.str("message") == "" {
			t.Errorf("error reply %v", m)
		}
	}
	// channel_full, already_subscribed, too_many_channels.
	other := newClient("c2", "other", []string{"news:*"}, nil)
	e.subscribe(other, "news:today")
	if err := e.handle(limited, "subscribe", 1, `{"channel":"news:today"}`); err == nil || err.Code != protocol.CodeChannelFull {
		t.Fatalf("full: %v", err)
	}
	limited.expect(t, "error")
	e.subscribe(limited, "chat:lobby")
	if err := e.handle(limited, "subscribe", 1, `{"channel":"chat:lobby"}`); err == nil || err.Code != protocol.CodeAlreadySubscribed {
		t.Fatalf("again: %v", err)
	}
	limited.expect(t, "error")
	e.subscribe(limited, "chat:room.1")
	if err := e.handle(limited, "subscribe", 1, `{"channel":"chat:room.2"}`); err == nil || err.Code != protocol.CodeTooManyChannels {
		t.Fatalf("too many: %v", err)
	}
	limited.expect(t, "error")
	// A client without a channels claim may do nothing.
	anon := &fakeClient{id: "c3", notify: make(chan struct{}, 1)}
	if err := e.handle(anon, "subscribe", 1, `{"channel":"chat:lobby"}`); err == nil || err.Code != protocol.CodePermissionDenied {
		t.Fatalf("anon: %v", err)
	}
}

// publishN publishes n server messages numbered from 1 and returns the last position.
func publishN(t *testing.T, e *env, ch string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if _, err := e.s.Publish(context.Background(), ch, json.RawMessage(fmt.Sprint(i)), "server"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecoveryOfExactly100(t *testing.T) {
	e := start(t, room.Options{})
	keeper := newClient("keep", "keeper", everyone, nil) // keeps the stream alive
	e.subscribe(keeper, "chat:lobby")
	publishN(t, e, "chat:lobby", 5)

	first := newClient("c1", "alice", everyone, nil)
	ack := e.subscribe(first, "chat:lobby")
	last, epoch := ack.num("offset"), ack.str("epoch")
	if last != 5 {
		t.Fatalf("ack %v", ack)
	}
	e.s.Leave(context.Background(), first) // disconnect

	publishN(t, e, "chat:lobby", 100)

	again := newClient("c2", "alice", everyone, nil)
	ack = e.mustHandle(again, "subscribe", 3, fmt.Sprintf(`{"channel":"chat:lobby","since":{"offset":%d,"epoch":%q}}`, last, epoch))
	if ack.str("type") != "ack" || ack["recovered"] != true || ack.num("offset") != 105 {
		t.Fatalf("ack %v", ack)
	}
	for i := uint64(1); i <= 100; i++ {
		m := again.expect(t, "message")
		if m.num("offset") != last+i || m.num("payload") != i {
			t.Fatalf("message %d: %v", i, m)
		}
	}
	again.quiet(t)
	publishN(t, e, "chat:lobby", 1)
	if m := again.expect(t, "message"); m.num("offset") != 106 {
		t.Fatalf("live %v", m)
	}
}

func TestTooFarBehindGetsRecoveryFailed(t *testing.T) {
	e := start(t, room.Options{Namespaces: map[string]room.Namespace{"chat": {HistorySize: 10, HistoryTTL: time.Minute}}})
	keeper := newClient("keep", "keeper", everyone, nil)
	e.subscribe(keeper, "chat:lobby")
	ack := e.subscribe(newClient("c0", "x", everyone, nil), "chat:lobby")
	publishN(t, e, "chat:lobby", 20)

	c := newClient("c1", "alice", everyone, nil)
	cur := uint64(20)
	for _, since := range []string{
		fmt.Sprintf(`{"offset":%d,"epoch":%q}`, ack.num("offset"), ack.str("epoch")), // too old
		`{"offset":3,"epoch":"stale"}`, // other epoch
	} {
		m := e.mustHandle(c, "subscribe", 4, `{"channel":"chat:lobby","since":`+since+`}`)
		if m.str("type") != "recovery_failed" || m.num("offset") != cur || m.str("epoch") != ack.str("epoch") || m.str("channel") != "chat:lobby" {
			t.Fatalf("got %v", m)
		}
		// Still subscribed live.
		publishN(t, e, "chat:lobby", 1)
		cur++
		if m := c.expect(t, "message"); m.num("offset") != cur {
			t.Fatalf("live %v", m)
		}
		e.mustHandle(c, "unsubscribe", 5, `{"channel":"chat:lobby"}`)
	}
	// history request from too far back is an error, from the start of retained works.
	e.subscribe(c, "chat:lobby")
	if err := e.handle(c, "history", 6, `{"channel":"chat:lobby","since":{"offset":1,"epoch":"`+ack.str("epoch")+`"}}`); err == nil || err.Code != protocol.CodeRecoveryFailed {
		t.Fatalf("history: %v", err)
	}
	c.expect(t, "error")
	h := e.mustHandle(c, "history", 7, `{"channel":"chat:lobby","limit":3}`)
	pubs, _ := h["publications"].([]any)
	if h.str("type") != "history" || len(pubs) != 3 || h.num("offset") != 22 || pubs[2].(map[string]any)["offset"].(float64) != 22 {
		t.Fatalf("history %v", h)
	}
}

// TestSubscribeRacingPublisher: clients subscribing while a publisher runs get
// every message exactly once and in order, whether or not they recover.
func TestSubscribeRacingPublisher(t *testing.T) {
	const n = 1000
	e := start(t, room.Options{Namespaces: map[string]room.Namespace{"chat": {HistorySize: n, HistoryTTL: time.Minute}}})
	keeper := newClient("keep", "keeper", everyone, nil)
	base := e.subscribe(keeper, "chat:race")

	var wg sync.WaitGroup
	wg.Go(func() { publishN(t, e, "chat:race", n) })
	const subscribers = 8
	clients := make([]*fakeClient, subscribers)
	for i := range clients {
		clients[i] = newClient(fmt.Sprint("r", i), "u", everyone, nil)
		wg.Go(func() {
			time.Sleep(time.Duration(i) * time.Millisecond)
			body := `{"channel":"chat:race"}`
			if i%2 == 0 { // recovering from the very start
				body = fmt.Sprintf(`{"channel":"chat:race","since":{"offset":0,"epoch":%q}}`, base.str("epoch"))
			}
			if err := e.handle(clients[i], "subscribe", 1, body); err != nil {
				t.Errorf("subscribe: %v", err)
			}
		})
	}
	wg.Wait()
	for i, c := range clients {
		ack := c.expect(t, "ack")
		want := ack.num("offset") + 1
		if i%2 == 0 {
			want = 1
		}
		for ; want <= n; want++ {
			m := c.expect(t, "message")
			if m.num("offset") != want {
				t.Fatalf("client %d: offset %d, want %d", i, m.num("offset"), want)
			}
		}
		c.quiet(t)
	}
}

func TestPresence(t *testing.T) {
	e := start(t, room.Options{})
	alice := newClient("c1", "alice", everyone, nil)
	bob := newClient("c2", "bob", everyone, nil)
	e.subscribe(alice, "chat:p")
	e.subscribe(bob, "chat:p")
	if m := alice.expect(t, "joined"); m.str("user") != "bob" || m.str("conn_id") != "c2" || m.str("channel") != "chat:p" {
		t.Fatalf("joined %v", m)
	}
	p := e.mustHandle(alice, "presence", 5, `{"channel":"chat:p"}`)
	users, _ := json.Marshal(p["users"])
	if p.str("type") != "presence" || string(users) != `[{"conn_id":"c1","user":"alice"},{"conn_id":"c2","user":"bob"}]` {
		t.Fatalf("presence %v", p)
	}
	e.s.Leave(context.Background(), bob)
	if m := alice.expect(t, "left"); m.str("user") != "bob" {
		t.Fatalf("left %v", m)
	}
	p = e.mustHandle(alice, "presence", 6, `{"channel":"chat:p"}`)
	if users, _ := p["users"].([]any); len(users) != 1 {
		t.Fatalf("presence after leave %v", p)
	}
	bob.quiet(t)
}

func TestSlowConsumerDoesNotStopOthers(t *testing.T) {
	e := start(t, room.Options{})
	slow := newClient("slow", "s", everyone, nil)
	e.subscribe(slow, "chat:x")
	slow.fail = true
	fast := newClient("fast", "f", everyone, nil)
	e.subscribe(fast, "chat:x")
	publishN(t, e, "chat:x", 3)
	for i := 1; i <= 3; i++ {
		fast.expect(t, "message")
	}
}

func TestSubscriptionToken(t *testing.T) {
	verify := func(_ context.Context, tok string) (map[string]any, error) {
		if tok == "good" {
			return map[string]any{"channel": "chat:vip", "sub": "alice"}, nil
		}
		return nil, errors.New("bad signature")
	}
	e := start(t, room.Options{SubscriptionTokenVerify: verify})
	alice := newClient("c1", "alice", nil, nil)
	e.mustHandle(alice, "subscribe", 1, `{"channel":"chat:vip","token":"good"}`)
	for _, tc := range []struct {
		c    *fakeClient
		body string
	}{
		{alice, `{"channel":"chat:other","token":"good"}`},
		{alice, `{"channel":"chat:vip2","token":"forged"}`},
		{newClient("c2", "bob", nil, nil), `{"channel":"chat:vip","token":"good"}`},
	} {
		if err := e.handle(tc.c, "subscribe", 2, tc.body); err == nil || err.Code != protocol.CodePermissionDenied {
			t.Fatalf("%s: %v", tc.body, err)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []room.Options{
		{DefaultChannel: "bad channel"},
		{DefaultChannel: "nope:x"},
		{Namespaces: map[string]room.Namespace{"a:b": {}}},
		{Namespaces: map[string]room.Namespace{"chat": {JoinLeave: true}}},
		{Namespaces: map[string]room.Namespace{"chat": {HistorySize: -1}}},
	} {
		if o.Validate() == nil {
			t.Errorf("accepted %+v", o)
		}
	}
	if _, err := room.New(room.Options{}, nil); err == nil {
		t.Error("nil broker accepted")
	}
}

// signedAs is a client whose current message was signed in mode (what the root's
// signedClient reports).
type signedAs struct {
	*fakeClient
	mode string
}

func (c signedAs) MessageIntegrity() string { return c.mode }

// TestIntegrityNamespaceGuardsReads: an hmac/pop namespace refuses unsigned (or
// otherwise-signed) subscribe, history, presence and publish; unsubscribe is free
// (issue 13 item 2).
func TestIntegrityNamespaceGuardsReads(t *testing.T) {
	e := start(t, room.Options{Namespaces: map[string]room.Namespace{
		"chat":  {},
		"vault": {Integrity: "pop", Presence: true, HistorySize: 10, HistoryTTL: time.Minute, ClientPublish: true},
	}})
	vault := []string{"vault:*"}
	c := newClient("c1", "u", vault, vault)
	ctx := context.Background()
	for _, as := range []room.Client{c, signedAs{c, "hmac"}} {
		for _, typ := range []string{"subscribe", "history", "presence", "publish"} {
			raw := `{"type":"` + typ + `","id":1,"channel":"vault:a","payload":1}`
			err := e.s.Handle(ctx, as, typ, []byte("1"), []byte(raw))
			if err == nil || err.Code != protocol.CodeIntegrityRequired {
				t.Fatalf("%T %s: %v, want %s", as, typ, err, protocol.CodeIntegrityRequired)
			}
			c.expect(t, "error")
		}
	}
	pop := signedAs{c, "pop"}
	if err := e.s.Handle(ctx, pop, "subscribe", []byte("2"), []byte(`{"type":"subscribe","id":2,"channel":"vault:a"}`)); err != nil {
		t.Fatalf("pop-signed subscribe: %v", err)
	}
	c.expect(t, "ack")
	if err := e.s.Handle(ctx, c, "unsubscribe", []byte("3"), []byte(`{"type":"unsubscribe","id":3,"channel":"vault:a"}`)); err != nil {
		t.Fatalf("unsigned unsubscribe: %v", err)
	}
	c.expect(t, "ack")
}

// A channel large enough to be delivered by several goroutines still gives
// every subscriber every publication once, in order.
func TestLargeFanoutInOrder(t *testing.T) {
	e := start(t, room.Options{Namespaces: map[string]room.Namespace{"chat": {HistorySize: 10}}})
	const subs, pubs = 2500, 5
	clients := make([]*fakeClient, subs)
	for i := range clients {
		clients[i] = newClient(fmt.Sprint("c", i), fmt.Sprint("u", i), []string{"chat:big"}, nil)
		e.subscribe(clients[i], "chat:big")
	}
	for k := 1; k <= pubs; k++ {
		if _, err := e.s.Publish(context.Background(), "chat:big", json.RawMessage(fmt.Sprint(k)), ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range clients {
		for k := 1; k <= pubs; k++ {
			m := c.expect(t, "message")
			if m.num("offset") != uint64(k) {
				t.Fatalf("%s: publication %d has offset %d", c.id, k, m.num("offset"))
			}
		}
	}
}

// testChecks refuses every subscribe and publish with refuse when set, else
// rewrites publications to rewrite when set.
type testChecks struct{ refuse, rewrite string }

func (r testChecks) CheckSubscribe(context.Context, room.Client, string) *protocol.Error {
	if r.refuse != "" {
		return &protocol.Error{Code: r.refuse, Message: "refused by the namespace's checks"}
	}
	return nil
}

func (r testChecks) CheckPublish(_ context.Context, _ room.Client, _ string, p []byte) ([]byte, *protocol.Error) {
	switch {
	case r.refuse != "":
		return nil, &protocol.Error{Code: r.refuse, Message: "refused by the namespace's checks"}
	case r.rewrite != "":
		return []byte(r.rewrite), nil
	}
	return p, nil
}

// A namespace's Checks apply to its channels only, and travel with it: the
// namespaces SetNamespaces installs (a reload) bring theirs, for clients
// already connected.
func TestNamespaceChecksFollowSetNamespaces(t *testing.T) {
	ns := func(game room.Checks) map[string]room.Namespace {
		return map[string]room.Namespace{"chat": {ClientPublish: true}, "game": {ClientPublish: true, Checks: game}}
	}
	e := start(t, room.Options{Namespaces: ns(testChecks{refuse: protocol.CodeHookRefused})})
	c := newClient("c1", "alice", []string{"chat:*", "game:*"}, []string{"chat:*", "game:*"})
	w := newClient("w", "watcher", []string{"game:*"}, nil)
	e.subscribe(c, "chat:x") // no checks in chat
	for i, req := range []string{"subscribe", "publish"} {
		if err := e.handle(c, req, 2+i, `{"channel":"game:g1","payload":1}`); err == nil || err.Code != protocol.CodeHookRefused {
			t.Fatalf("%s in game: %v, want %s", req, err, protocol.CodeHookRefused)
		}
		c.expect(t, "error")
	}

	if err := e.s.SetNamespaces(ns(testChecks{rewrite: `{"checked":true}`})); err != nil {
		t.Fatal(err)
	}
	e.subscribe(w, "game:g1")
	e.mustHandle(c, "publish", 4, `{"channel":"game:g1","payload":1}`)
	if m := w.expect(t, "message"); fmt.Sprint(m["payload"]) != "map[checked:true]" {
		t.Fatalf("the new checks' rewrite was not published: %v", m["payload"])
	}
	if err := e.s.SetNamespaces(ns(nil)); err != nil {
		t.Fatal(err)
	}
	e.mustHandle(c, "publish", 5, `{"channel":"game:g1","payload":1}`)
	if m := w.expect(t, "message"); fmt.Sprint(m["payload"]) != "1" {
		t.Fatalf("without checks the payload is %v, want 1", m["payload"])
	}
}
