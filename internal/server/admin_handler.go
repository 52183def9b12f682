package server

import "net/http"

// AdminHandler serves the admin listener: metrics, the admin API, the dashboard and
// the server-side publish API. Keep it on a loopback or private address.
//
// GET /metrics, GET /healthz and GET /readyz (readiness with its details: connections,
// Redis, upstream health) are open (Prometheus scrapers and probes on the private
// admin network); every /api/v1 call requires the admin token. The
// dashboard page at / is static and asks for the token itself.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.handleReadyDetail)
	mux.Handle("GET /metrics", s.metrics.Handler())
	s.mountPublish(mux)
	api, err := s.newAdminAPI()
	if err != nil {
		// Only a programming error (a missing dependency) gets here; refuse the
		// API rather than serve it half built.
		s.log.Error("admin API disabled", "err", err)
		mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "admin API unavailable"})
		})
		return mux
	}
	mux.Handle("/", api)
	return mux
}
