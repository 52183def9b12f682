package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

// TestBrowserClientReconnectRecover runs the JavaScript Client in headless
// Chromium against a real wsgate over TLS: ticket flow, hmac-signed publish,
// an operator kick, reconnect with backoff and recovery of exactly what the Go
// client published meanwhile, in order.
func TestBrowserClientReconnectRecover(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Integrity.MasterKeys = []config.IntegrityKey{{ID: "k1", Secret: strings.Repeat("m", 40)}}
	cfg.Channels.Namespaces["secure"] = config.Namespace{ClientPublish: true, HistorySize: 50, HistoryTTL: time.Minute, Integrity: "hmac"}
	s := wsgatetest.Start(t, cfg)
	claims := map[string]any{"channels": map[string]any{"sub": []string{"secure:*"}, "pub": []string{"secure:*"}}}
	var toks []string
	for i := 0; i < 8; i++ {
		toks = append(toks, s.Token(t, "browser-user", claims))
	}
	tj, _ := json.Marshal(toks)

	ctx := wsgatetest.Browser(t, 90*time.Second)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(s.HTTPURL+"/.well-known/wsgate-keys.json")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	setup := fmt.Sprintf(`Promise.race([new Promise((_, rej) => setTimeout(() => rej(new Error("setup timed out: " + JSON.stringify(window.__log.slice(-5)))), 20000)), (async () => {
		window.__log = [];
		const w = await import("/client/wsgate.js");
		const toks = %s; let i = 0;
		const c = new w.Client(%q, { token: async () => toks[i++ %% toks.length], minBackoff: 20, maxBackoff: 200, integrity: "hmac" });
		window.__got = []; window.__disc = [];
		c.on("disconnected", (d) => { window.__disc.push(d.code); window.__log.push("disconnected " + d.code + " " + (d.error && d.error.message)); });
		c.on("error", (d) => window.__log.push("error " + (d.error && d.error.message)));
		await c.connect();
		await c.subscribe("secure:b", { onMessage: (m) => window.__got.push(m.payload.text) });
		await c.publish("secure:b", { text: "b1" });
		window.__client = c;
		return c.welcome.conn_id;
	})()])`, tj, s.URL)
	connID, err := chromedp.Run(ctx, chromedp.Evaluate[string](setup, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browser setup: %v", err)
	}

	// The Go client publishes (signed) while the operator kicks the browser.
	gctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	g, err := client.Dial(gctx, s.URL, &client.DialOptions{
		Token:     func(context.Context) (string, error) { return s.Token(t, "go-user", claims), nil },
		RootCAs:   s.RootCAs,
		Integrity: client.IntegrityHMAC,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	req, _ := http.NewRequest("POST", s.AdminURL+"/api/v1/connections/"+connID+"/kick", nil)
	req.Header.Set("Authorization", "Bearer "+s.Cfg.Admin.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("kick: %v %v", err, resp)
	}
	resp.Body.Close()
	for i := 1; i <= 5; i++ {
		if _, err := g.Publish(gctx, "secure:b", map[string]string{"text": fmt.Sprintf("away%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	type result struct {
		Got  []string `json:"got"`
		Disc []int    `json:"disc"`
	}
	wait := `(async () => {
		const deadline = Date.now() + 20000;
		while (window.__got.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
		await window.__client.ping();
		return { got: window.__got, disc: window.__disc };
	})()`
	got, err := chromedp.Run(ctx, chromedp.Evaluate[result](wait, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browser wait: %v", err)
	}
	if strings.Join(got.Got, ",") != "b1,away1,away2,away3,away4,away5" {
		t.Fatalf("browser got %v (disconnects %v)", got.Got, got.Disc)
	}
	if len(got.Disc) == 0 || got.Disc[0] != 1008 {
		t.Fatalf("browser disconnects %v, want a 1008 kick", got.Disc)
	}
}
