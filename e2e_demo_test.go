package wsgate_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/internal/wsgatetest"
)

// The dev demo page in real headless Chromium: two browser contexts chat, see each
// other in presence, and one reloads after missing messages and receives them.
func TestDemoPageTwoBrowsersChat(t *testing.T) {
	cfg := wsgatetest.Config()
	info, err := wsgate.PrepareDev(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := wsgatetest.Start(t, cfg, wsgate.WithDev(info))
	root := wsgatetest.Browser(t, 60*time.Second)
	alice, cancelA := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelA()
	bob, cancelB := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelB()

	login := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.Navigate(s.HTTPURL+"/#dev="+info.PageSecret),
			chromedp.WaitVisible("#name"),
			chromedp.SendKeys("#name", name),
			chromedp.Click("#joinbtn"),
			waitText("#status", "connected as "+name),
		)
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
	if err := chromedp.Do(alice, say("missed one"), say("missed two")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := chromedp.Do(bob, chromedp.Navigate(s.HTTPURL+"/"), waitText("#status", "connected as bob"),
		waitText("#messages", "missed one"), waitText("#messages", "missed two")); err != nil {
		t.Fatalf("bob did not recover missed messages: %v", err)
	}
	if shot, err := chromedp.Run(alice, chromedp.CaptureScreenshot()); err == nil {
		p := filepath.Join(wsgatetest.ArtifactDir(t), "demo-chat.png")
		if os.WriteFile(p, shot, 0o644) == nil {
			t.Logf("screenshot: %s", p)
		}
	}
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
