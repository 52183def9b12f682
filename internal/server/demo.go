package server

import (
	"net/http"
	"time"

	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/tools/demo"
)

// mountDemo serves the development demo page and its token endpoint (dev mode
// only; the endpoint wants the per-start page secret and a direct loopback
// client, see package demo).
func (s *Server) mountDemo(mux *http.ServeMux) {
	secret, err := auth.ParseSecret(s.dev.Secret)
	if err != nil {
		s.log.Warn("demo page disabled", "err", err)
		return
	}
	s.redactor.Add(s.dev.PageSecret)
	signer := auth.NewHMACSigner(secret, "dev")
	h := demo.Handler(func(sub string, ttl time.Duration, claims map[string]any) (string, error) {
		tok, err := signer.Mint(sub, ttl, claims)
		if err == nil {
			s.redactor.Add(tok)
		}
		return tok, err
	}, s.dev.PageSecret)
	mux.Handle("GET /{$}", h)
	mux.Handle("GET /game", h)
	mux.Handle("POST /dev/token", h)
}
