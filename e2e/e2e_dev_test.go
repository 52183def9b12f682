package e2e

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

// Issue 13 item 4: the --dev token endpoint is an authentication bypass unless it
// wants the per-start secret, a direct loopback client (no proxy headers), a
// loopback Host, a same-origin Origin and a JSON body. Real sockets throughout,
// including a real reverse proxy on the same host.
func TestSec04DevTokenEndpoint(t *testing.T) {
	s, info := startDevServer(t)
	client := s.HTTPClient()

	post := func(t *testing.T, c *http.Client, base string, mod func(*http.Request)) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+"/dev/token", strings.NewReader(`{"name":"admin"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Wsgate-Dev-Secret", info.PageSecret)
		if mod != nil {
			mod(req)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("POST /dev/token: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, string(b)
	}

	t.Run("allowed", func(t *testing.T) {
		for name, mod := range map[string]func(*http.Request){
			"no origin":   nil,
			"same origin": func(r *http.Request) { r.Header.Set("Origin", s.HTTPURL) },
			"localhost":   func(r *http.Request) { r.Host = strings.Replace(s.Addr, "127.0.0.1", "localhost", 1) },
			"json charset": func(r *http.Request) {
				r.Header.Set("Content-Type", "application/json; charset=utf-8")
			},
		} {
			code, body := post(t, client, s.HTTPURL, mod)
			if code != http.StatusOK {
				t.Fatalf("%s: %d %s", name, code, body)
			}
			var out struct{ Token string }
			if err := json.Unmarshal([]byte(body), &out); err != nil || out.Token == "" {
				t.Fatalf("%s: no token in %s", name, body)
			}
			// The minted token really works (this is the endpoint working, not a stub).
			c, resp, err := s.Dial(t, wsgatetest.DialOptions{Header: http.Header{"Authorization": {"Bearer " + out.Token}}})
			if err != nil {
				t.Fatalf("%s: minted token refused: %v %v", name, err, resp)
			}
			c.Expect(t, "welcome", 5*time.Second)
			_ = c.Conn.WriteClose(1000, "")
		}
	})

	t.Run("refused", func(t *testing.T) {
		for name, mod := range map[string]func(*http.Request){
			"no secret":         func(r *http.Request) { r.Header.Del("X-Wsgate-Dev-Secret") },
			"wrong secret":      func(r *http.Request) { r.Header.Set("X-Wsgate-Dev-Secret", info.PageSecret+"x") },
			"text/plain":        func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") },
			"form":              func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") },
			"no content type":   func(r *http.Request) { r.Header.Del("Content-Type") },
			"foreign origin":    func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") },
			"other port origin": func(r *http.Request) { r.Header.Set("Origin", "https://127.0.0.1:1") },
			"cross-site fetch":  func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") },
			"foreign host":      func(r *http.Request) { r.Host = "chat.example.com" },
			"x-forwarded-for":   func(r *http.Request) { r.Header.Set("X-Forwarded-For", "203.0.113.9") },
			"forwarded":         func(r *http.Request) { r.Header.Set("Forwarded", "for=203.0.113.9") },
			"x-real-ip":         func(r *http.Request) { r.Header.Set("X-Real-IP", "203.0.113.9") },
			"via":               func(r *http.Request) { r.Header.Set("Via", "1.1 nginx") },
		} {
			if code, body := post(t, client, s.HTTPURL, mod); code != http.StatusForbidden {
				t.Errorf("%s: got %d %s, want 403", name, code, body)
			}
		}
	})

	// A same-host reverse proxy: every visitor's connection to wsgate comes from
	// 127.0.0.1. Even with the right secret (a visitor who somehow learnt it), a
	// request through the proxy is refused.
	target, _ := url.Parse(s.HTTPURL)
	startProxy := func(t *testing.T, p *httputil.ReverseProxy) string {
		t.Helper()
		p.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs, MinVersion: tls.VersionTLS12}}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: p, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		return "http://" + ln.Addr().String()
	}
	plain := &http.Client{Timeout: 10 * time.Second}
	t.Run("through reverse proxy with X-Forwarded-For", func(t *testing.T) {
		base := startProxy(t, httputil.NewSingleHostReverseProxy(target))
		if code, body := post(t, plain, base, nil); code != http.StatusForbidden || !strings.Contains(body, "proxy") {
			t.Fatalf("through the proxy: %d %s, want 403 naming the proxy", code, body)
		}
	})
	t.Run("through reverse proxy setting a public Host", func(t *testing.T) {
		base := startProxy(t, &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = "chat.example.com" // nginx: proxy_set_header Host $host
		}})
		if code, body := post(t, plain, base, nil); code != http.StatusForbidden {
			t.Fatalf("through the proxy: %d %s, want 403", code, body)
		}
	})
	t.Run("through a header-less proxy without the secret", func(t *testing.T) {
		base := startProxy(t, &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		}})
		code, body := post(t, plain, base, func(r *http.Request) { r.Header.Del("X-Wsgate-Dev-Secret") })
		if code != http.StatusForbidden {
			t.Fatalf("through the proxy: %d %s, want 403", code, body)
		}
	})
}
