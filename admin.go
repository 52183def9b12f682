package wsgate

import "net/http"

// AdminHandler serves the admin listener: metrics, the admin API, the dashboard and
// the server-side publish API. Keep it on a loopback or private address.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.Handle("GET /metrics", s.metrics.Handler())
	return mux
}
