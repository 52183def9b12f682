// Package demo is the development-mode demo: a chat page where a visitor picks a
// name, joins a channel, sees who is there, and after a reload receives what it
// missed; and a two-player tic-tac-toe page (/game) whose moves pass a publish
// hook that refuses illegal moves (Games) and a per-game rate limit. It exists only under `wsgate serve --dev`; its token endpoint mints
// tokens for any name and answers loopback clients only.
package demo

import (
	_ "embed"
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"time"
)

//go:embed index.html
var page []byte

// Minter mints a token for a user with claims.
type Minter func(sub string, ttl time.Duration, claims map[string]any) (string, error)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)

// Handler serves the page at "/" and the dev token endpoint at "POST /dev/token".
func Handler(mint Minter) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' wss: ws:; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(page)
	})
	mux.HandleFunc("GET /game", serveGame)
	mux.HandleFunc("POST /dev/token", func(w http.ResponseWriter, r *http.Request) {
		if !loopback(r.RemoteAddr) {
			http.Error(w, `{"error":"forbidden"}`, http.StatusForbidden)
			return
		}
		var req struct {
			Name string `json:"name"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024)).Decode(&req); err != nil || !nameRE.MatchString(req.Name) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"name must be 1-32 of A-Z a-z 0-9 _ . -"}`))
			return
		}
		tok, err := mint(req.Name, time.Hour, map[string]any{
			"channels": map[string]any{"sub": []string{"chat:*", GameNamespace + ":*"}, "pub": []string{"chat:*", GameNamespace + ":*"}},
		})
		if err != nil {
			http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]string{"token": tok})
	})
	return mux
}

func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
