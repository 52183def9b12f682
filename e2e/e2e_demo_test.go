package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

// The dev demo page in real headless Chromium: two browser contexts chat, see each
// other in presence, and one reloads after missing messages and receives them.
// Then the operator kicks bob; while his page cannot reconnect (the browser blocks
// the ticket request) alice writes, and once it can, his page shows the
// disconnect code and recovers exactly the missed messages. No URL either page
// requests carries a token or the dev secret: the WebSocket URL carries a ticket.
func TestDemoPageTwoBrowsersChat(t *testing.T) {
	s, info := startDevServer(t)
	root := wsgatetest.Browser(t, 60*time.Second)
	var urls requestedURLs
	alice, cancelA := chromedp.NewContext(root, chromedp.WithNewBrowserContext(), chromedp.WithListener(urls.record))
	defer cancelA()
	bob, cancelB := chromedp.NewContext(root, chromedp.WithNewBrowserContext(), chromedp.WithListener(urls.record))
	defer cancelB()

	login := func(name string) chromedp.Action[chromedp.Void] {
		return joinPage(s.HTTPURL+"/#dev="+info.PageSecret, name)
	}
	say := func(text string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.SendKeys("#text", text),
			chromedp.Click("#sendbtn"),
		)
	}
	if err := chromedp.Do(alice, login("alice")); err != nil {
		t.Fatalf("alice: %v", err)
	}
	if err := chromedp.Do(bob, login("bob")); err != nil {
		t.Fatalf("bob: %v", err)
	}
	if err := chromedp.Do(alice, say("hello from alice")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bob, waitText("#messages", "hello from alice")); err != nil {
		t.Fatalf("bob did not see alice's message: %v", err)
	}
	if err := chromedp.Do(bob, say("hi alice, bob here")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(alice, waitText("#messages", "hi alice, bob here"), waitText("#users", "bob")); err != nil {
		t.Fatalf("alice did not see bob: %v", err)
	}
	// Bob leaves; alice writes; bob comes back (same tab: the page remembers his
	// name and last offset) and receives what he missed.
	if err := chromedp.Do(bob, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(alice, say("missed one"), say("missed two"), waitText("#messages", "missed two")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bob, chromedp.Navigate(s.HTTPURL+"/"), waitText("#status", "connected as bob"),
		waitText("#messages", "missed one"), waitText("#messages", "missed two")); err != nil {
		t.Fatalf("bob did not recover missed messages: %v", err)
	}

	// The operator kicks bob while his browser cannot fetch a ticket, so he stays
	// away until alice has written.
	connID, err := chromedp.Run(bob, chromedp.Evaluate[string]("document.getElementById('status').dataset.conn||''"))
	if err != nil || connID == "" {
		t.Fatalf("bob's connection id: %q %v", connID, err)
	}
	blockTickets := func(block bool) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			var p network.SetBlockedURLsParams
			if block {
				p.URLPatterns = []*network.BlockPattern{{URLPattern: s.HTTPURL + "/v1/tickets", Block: true}}
			}
			_, err := chromedp.Call(ctx, network.SetBlockedURLs, p)
			return err
		})
	}
	if err := chromedp.Do(bob, blockTickets(true)); err != nil {
		t.Fatalf("block tickets: %v", err)
	}
	if resp, _ := httpDo(t, nil, http.MethodPost, s.AdminURL+"/api/v1/connections/"+connID+"/kick", "Bearer "+s.Cfg.Admin.Token, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("kick: %s", resp.Status)
	}
	if err := chromedp.Do(bob, waitText("#messages", "disconnected (1008"), waitText("#status", "disconnected")); err != nil {
		t.Fatalf("bob's page did not show the kick: %v", err)
	}
	if err := chromedp.Do(alice, say("while kicked one"), say("while kicked two"),
		waitText("#messages", "while kicked one"), waitText("#messages", "while kicked two")); err != nil {
		t.Fatal(err)
	}
	if got := pageText(bob, t, "#messages"); strings.Contains(got, "while kicked") {
		t.Fatalf("bob got messages while he could not reconnect: %q", got)
	}
	if err := chromedp.Do(bob, blockTickets(false), waitText("#status", "connected as bob"),
		waitText("#messages", "while kicked one"), waitText("#messages", "while kicked two")); err != nil {
		t.Fatalf("bob did not recover the messages sent while he was kicked: %v", err)
	}
	got := pageText(bob, t, "#messages")
	if strings.Count(got, "while kicked one") != 1 || strings.Count(got, "while kicked two") != 1 ||
		strings.Index(got, "while kicked one") > strings.Index(got, "while kicked two") {
		t.Fatalf("bob's page shows the missed messages not exactly once in order: %q", got)
	}
	if strings.Contains(got, "could not be recovered") {
		t.Fatalf("bob's page reports a recovery failure: %q", got)
	}

	// A position the server cannot replay from (another epoch) is reported in the
	// page, not skipped silently.
	if err := chromedp.Do(bob,
		chromedp.Evaluate[chromedp.Void](`localStorage.setItem("wsgate-demo-pos:bob:chat:lobby", JSON.stringify({offset: 1, epoch: "gone"})), ({})`),
		chromedp.Reload(), waitText("#status", "connected as bob"), waitText("#messages", "could not be recovered")); err != nil {
		t.Fatalf("bob's page did not report the failed recovery: %v", err)
	}

	// No URL carried a credential: every WebSocket URL has a ticket and no token,
	// no request URL has a token, a JWT or the dev secret.
	reqs, sockets := urls.get()
	if len(sockets) < 4 { // alice once, bob at login, after the reload and after the kick
		t.Fatalf("saw %d WebSocket URLs, want at least 4: %q", len(sockets), sockets)
	}
	for _, u := range sockets {
		if !strings.Contains(u, "ticket=") {
			t.Errorf("WebSocket URL without a ticket: %s", u)
		}
	}
	for _, u := range append(reqs, sockets...) {
		l := strings.ToLower(u)
		if strings.Contains(l, "token=") || jwtShape.MatchString(u) || strings.Contains(u, info.PageSecret) {
			t.Errorf("a credential in a requested URL: %s", u)
		}
	}
	if shot, err := chromedp.Run(alice, chromedp.CaptureScreenshot()); err == nil {
		p := filepath.Join(wsgatetest.ArtifactDir(t), "demo-chat.png")
		if os.WriteFile(p, shot, 0o644) == nil {
			t.Logf("screenshot: %s", p)
		}
	}
}

// joinPage opens a dev demo page at u, joins as name and waits until the page
// says it is connected.
func joinPage(u, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(u),
		chromedp.WaitVisible("#name"),
		chromedp.SendKeys("#name", name),
		chromedp.Click("#joinbtn"),
		waitText("#status", "connected as "+name),
	)
}

// waitText polls until the element's text contains want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		deadline := time.Now().Add(15 * time.Second)
		for {
			txt, err := chromedp.Evaluate[string]("(document.querySelector("+jsString(sel)+")||{}).innerText||''")(ctx, tg)
			if err == nil && strings.Contains(txt, want) {
				return nil
			}
			if time.Now().After(deadline) {
				return &waitErr{sel: sel, want: want}
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

type waitErr struct{ sel, want string }

func (e *waitErr) Error() string { return "timed out waiting for " + e.sel + " to contain " + e.want }

func jsString(s string) string { return "'" + strings.ReplaceAll(s, "'", "\\'") + "'" }

// jwtShape matches a JWT (a JSON header, base64url, then two more parts); a
// random ticket may contain "eyJ" but not the dots.
var jwtShape = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.`)

// requestedURLs records every URL the pages request (HTTP and WebSocket), from
// the browser's network events.
type requestedURLs struct {
	mu      sync.Mutex
	reqs    []string
	sockets []string
}

func (r *requestedURLs) record(ev any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		if ev.Request != nil {
			r.reqs = append(r.reqs, ev.Request.URL)
		}
	case *network.EventWebSocketCreated:
		r.sockets = append(r.sockets, ev.URL)
	}
}

func (r *requestedURLs) get() (reqs, sockets []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs...), append([]string(nil), r.sockets...)
}

// pageText is the element's text now.
func pageText(ctx context.Context, t *testing.T, sel string) string {
	t.Helper()
	txt, err := chromedp.Run(ctx, chromedp.Evaluate[string]("(document.querySelector("+jsString(sel)+")||{}).innerText||''"))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return txt
}
