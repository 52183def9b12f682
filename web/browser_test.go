package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wsgate/wsgate/internal/conn/integrity"
	"github.com/wsgate/wsgate/web"
)

const chromiumPath = "/usr/bin/chromium"

const vectorsFile = "../internal/conn/integrity/testdata/vectors.json"

const page = `<!doctype html><meta charset="utf-8"><title>wsgate vectors</title>
<script type="module">
import { run } from "/testdata/run_vectors.js";
try {
  const v = await (await fetch("/vectors.json")).json();
  window.__result = JSON.stringify(await run(v));
} catch (e) {
  window.__result = JSON.stringify({ passed: 0, failed: 1, errors: ["page: " + (e && e.stack || e)] });
}
</script>`

type browserResult struct {
	Passed   int      `json:"passed"`
	Failed   int      `json:"failed"`
	Skipped  int      `json:"skipped"`
	Errors   []string `json:"errors"`
	Produced struct {
		HMAC    []string    `json:"hmac"`
		P256    *popProduce `json:"p256"`
		Ed25519 *popProduce `json:"ed25519"`
		Client  []string    `json:"client"`
	} `json:"produced"`
}

type popProduce struct {
	JKT       string   `json:"jkt"`
	Handshake string   `json:"handshake"`
	Msgs      []string `json:"msgs"`
}

func chromium(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath(chromiumPath)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found: install Debian's chromium package (required in CI)", chromiumPath)
		}
		t.Skipf("%s not found; skipping the browser test (it is required when CI=true)", chromiumPath)
	}
	return p
}

// TestBrowserVectors runs wsgate.js in headless Chromium against the shared
// vectors, then verifies with the Go Verifier what the browser signed.
func TestBrowserVectors(t *testing.T) {
	exe := chromium(t)
	vectors, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := os.ReadFile("testdata/run_vectors.js")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/wsgate.js", web.Handler())
	mux.HandleFunc("/testdata/run_vectors.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", web.ContentType)
		_, _ = w.Write(runner)
	})
	mux.HandleFunc("/vectors.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(vectors)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	if _, err := chromedp.Run(bctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatalf("chromedp navigate: %v", err)
	}
	raw, err := chromedp.Run(bctx, chromedp.Poll[string](`window.__result`, chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("chromedp poll: %v", err)
	}
	var res browserResult
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		t.Fatalf("result %q: %v", raw, err)
	}
	for _, e := range res.Errors {
		t.Errorf("browser: %s", e)
	}
	t.Logf("browser: %d passed, %d failed, %d skipped", res.Passed, res.Failed, res.Skipped)
	if res.Failed != 0 || res.Passed == 0 {
		t.Fatalf("browser vectors failed")
	}
	if res.Skipped != 0 {
		t.Errorf("browser skipped %d checks (no Ed25519 in WebCrypto?)", res.Skipped)
	}
	verifyProduced(t, vectors, &res)
}

// verifyProduced checks the browser's fresh envelopes with the server code.
func verifyProduced(t *testing.T, vectorsJSON []byte, res *browserResult) {
	var v struct {
		HMAC []struct {
			MasterKeyHex string `json:"master_key_hex"`
			Kid          string `json:"kid"`
			Subject      string `json:"subject"`
		} `json:"hmac"`
	}
	if err := json.Unmarshal(vectorsJSON, &v); err != nil {
		t.Fatal(err)
	}
	h := v.HMAC[0]
	master := make([]byte, len(h.MasterKeyHex)/2)
	for i := range master {
		var b byte
		for _, c := range h.MasterKeyHex[2*i : 2*i+2] {
			b <<= 4
			switch {
			case c >= '0' && c <= '9':
				b |= byte(c - '0')
			default:
				b |= byte(c-'a') + 10
			}
		}
		master[i] = b
	}
	ring, err := integrity.NewKeyRing(integrity.MasterKey{ID: h.Kid, Secret: master})
	if err != nil {
		t.Fatal(err)
	}
	ver, err := integrity.NewVerifier(integrity.Options{Keys: ring, Replay: integrity.NewMemoryReplayCache(1000)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, _ := ver.NewHMACConn(h.Subject, "c_browser")
	if len(res.Produced.HMAC) != 2 {
		t.Fatalf("browser produced %d hmac envelopes", len(res.Produced.HMAC))
	}
	for _, m := range res.Produced.HMAC {
		if _, _, err := ver.Open(ctx, st, []byte(m)); err != nil {
			t.Errorf("browser hmac envelope: %v\n%s", err, m)
		}
	}
	cst, _ := ver.NewHMACConn(h.Subject, "c_fake")
	for _, m := range res.Produced.Client {
		if _, _, err := ver.Open(ctx, cst, []byte(m)); err != nil {
			t.Errorf("WsgateClient envelope: %v", err)
		}
	}
	for name, p := range map[string]*popProduce{"p256": res.Produced.P256, "ed25519": res.Produced.Ed25519} {
		if p == nil {
			t.Errorf("browser produced no %s envelopes", name)
			continue
		}
		q, err := url.ParseQuery(p.Handshake)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "http://ws.example.com/ws?"+q.Encode(), nil)
		pp, err := integrity.PopParamsFromRequest(r)
		if err != nil {
			t.Fatalf("%s handshake params: %v", name, err)
		}
		pk, err := ver.VerifyPopHandshake(ctx, pp, p.JKT, r.Host, r.URL.EscapedPath())
		if err != nil {
			t.Fatalf("%s handshake: %v", name, err)
		}
		pst, _ := ver.NewPopConn(h.Subject, "c_browser", pk)
		for _, m := range p.Msgs {
			if _, _, err := ver.Open(ctx, pst, []byte(m)); err != nil {
				t.Errorf("browser %s envelope: %v", name, err)
			}
		}
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != web.ContentType {
		t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	b, _ := web.FS.ReadFile("wsgate.js")
	if len(b) == 0 || string(b) != string(web.ClientJS) {
		t.Fatal("FS and ClientJS differ")
	}
	resp2, err := http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST status %d", resp2.StatusCode)
	}
}
