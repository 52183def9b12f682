package e2e

import (
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

// Issue 15 item 3: the admin API lists each connection's channels, search by
// channel finds it, and the dashboard's Channels column shows them (real
// headless Chromium).
func TestDashboardChannelsColumnAndSearch(t *testing.T) {
	s := wsgatetest.Start(t, adminTestConfig())
	alice := subscriber(t, s, "alice", chatPerms, "chat:lobby")
	subscribe(t, alice, "chat:ops", nil)
	subscriber(t, s, "bob", chatPerms, "chat:random")

	aliceID, conn := adminConnID(t, s, "alice")
	if got := conn["channels"]; len(asList(got)) != 2 || asList(got)[0] != "chat:lobby" || asList(got)[1] != "chat:ops" {
		t.Fatalf("alice's channels in the API: %v", got)
	}
	bobID, _ := adminConnID(t, s, "bob")
	code, out := adminCall(t, s, "GET", "/api/v1/connections?q="+url.QueryEscape("chat:ops"), s.Cfg.Admin.Token, nil)
	list := asList(out["connections"])
	if code != 200 || len(list) != 1 || list[0].(map[string]any)["id"] != aliceID {
		t.Fatalf("search by channel: %d %v", code, out)
	}

	ctx := wsgatetest.Browser(t, 60*time.Second)
	aliceRow, bobRow := `#conn-body tr[data-id="`+aliceID+`"]`, `#conn-body tr[data-id="`+bobID+`"]`
	if err := chromedp.Do(ctx,
		dashboardLogin(s),
		chromedp.WaitVisible(aliceRow),
		waitText(aliceRow, "chat:lobby"),
		waitText(aliceRow, "chat:ops"),
		waitText(bobRow, "chat:random"),
		chromedp.SendKeys("#search", "chat:ops"),
		chromedp.WaitNotPresent(bobRow),
		chromedp.WaitVisible(aliceRow),
	); err != nil {
		t.Fatalf("dashboard channels column / search: %v", err)
	}
	// Unsubscribing shows in the API at once.
	alice.SendJSON(t, map[string]any{"type": "unsubscribe", "id": "u", "channel": "chat:ops"})
	alice.Expect(t, "ack", 5*time.Second)
	_, conn = adminConnID(t, s, "alice")
	if got := asList(conn["channels"]); len(got) != 1 || got[0] != "chat:lobby" {
		t.Fatalf("after unsubscribe: %v", got)
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}
