// Package demo is the development-mode demo: a chat page where a visitor picks a
// name, joins a channel, sees who is there, and after a reload receives what it
// missed, and a two-player tic-tac-toe page (/game) whose moves pass a publish
// hook that refuses illegal moves (Games) and a per-game rate limit. Both exist only under `wsgate serve --dev`. The page is a client of the
// JavaScript SDK served at /client/wsgate.js (docs/clients.md), so it doubles as
// a browser example: ticket credential, reconnects, recovery or recovery_failed.
//
// Its token endpoint mints a token for any name, so it is guarded as the
// authentication bypass it is: the caller must be a direct loopback peer (no proxy
// headers: behind a reverse proxy on the same host every visitor is "loopback"),
// must present the per-start secret the banner prints (the page URL carries it in
// its fragment, which browsers never send to servers or proxies), must send JSON
// (a CORS-simple text/plain POST from another site is refused) and, when it
// sends Origin or Host, they must name this server on a loopback host.
package demo

import (
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"
)

//go:embed index.html
var page []byte

// Minter mints a token for a user with claims.
type Minter func(sub string, ttl time.Duration, claims map[string]any) (string, error)

// SecretHeader carries the per-start dev secret on POST /dev/token.
const SecretHeader = "X-Wsgate-Dev-Secret"

// Claims are the channel rights of every demo and sample dev token: the dev
// banner's "mint another" command gives the same ones.
func Claims() map[string]any {
	return map[string]any{"channels": map[string]any{"sub": []string{"chat:*", GameNamespace + ":*"}, "pub": []string{"chat:*", GameNamespace + ":*"}}}
}

// proxyHeaders are set by reverse proxies; a request carrying any of them came
// through one, and its loopback peer address says nothing about the visitor.
var proxyHeaders = []string{
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
	"X-Forwarded-Server", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip", "Cf-Connecting-Ip",
	"X-Cluster-Client-Ip", "Fastly-Client-Ip", "X-Original-Forwarded-For", "Via",
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)

// Handler serves the page at "/" and the dev token endpoint at "POST /dev/token".
// secret is the per-start secret the endpoint requires; an empty secret refuses
// every token request.
func Handler(mint Minter, secret string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' wss: ws:; style-src 'unsafe-inline'; script-src 'self' 'unsafe-inline'")
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(page)
	})
	mux.HandleFunc("GET /game", serveGame)
	mux.HandleFunc("POST /dev/token", func(w http.ResponseWriter, r *http.Request) {
		if why := refuse(r, secret); why != "" {
			writeError(w, http.StatusForbidden, why)
			return
		}
		var req struct {
			Name string `json:"name"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024)).Decode(&req); err != nil || !nameRE.MatchString(req.Name) {
			writeError(w, http.StatusBadRequest, "name must be 1-32 of A-Z a-z 0-9 _ . -")
			return
		}
		tok, err := mint(req.Name, time.Hour, Claims())
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "unavailable")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]string{"token": tok})
	})
	return mux
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// refuse says why a token request is refused, or "" when it may be served. The
// reasons are safe to show: they name the rule, never the secret.
func refuse(r *http.Request, secret string) string {
	if !loopback(r.RemoteAddr) {
		return "dev tokens are for loopback clients only"
	}
	for _, h := range proxyHeaders {
		if _, ok := r.Header[h]; ok {
			return "dev tokens are not served through a proxy (request carries " + h + ")"
		}
	}
	if !loopbackHost(r.Host) {
		return "dev tokens are served on a loopback host name only"
	}
	if o := r.Header.Get("Origin"); o != "" && !strings.EqualFold(o, origin(r)) {
		return "foreign Origin"
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return "cross-site request"
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return "Content-Type must be application/json"
	}
	got := r.Header.Get(SecretHeader)
	if secret == "" || subtle.ConstantTimeCompare([]byte(got), []byte(secret)) != 1 {
		return "missing or wrong dev secret: open the demo page with the URL the banner prints"
	}
	return ""
}

// origin is the browser origin of this request's target.
func origin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
