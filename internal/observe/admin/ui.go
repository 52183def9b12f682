package admin

import (
	"embed"
	"net/http"
	"path"
)

//go:embed ui/index.html ui/app.css ui/app.js
var ui embed.FS

// csp allows only the dashboard's own files and API: no inline script, no
// third-party origin, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func contentType(name string) string {
	switch path.Ext(name) {
	case ".css":
		return "text/css; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	}
	return "text/html; charset=utf-8"
}

func (h *Handler) serveDashboard(w http.ResponseWriter, _ *http.Request) {
	h.serveFile(w, "index.html")
}

func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name != "app.css" && name != "app.js" {
		http.NotFound(w, r)
		return
	}
	h.serveFile(w, name)
}

func (h *Handler) serveFile(w http.ResponseWriter, name string) {
	b, err := ui.ReadFile("ui/" + name)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", contentType(name))
	w.Header().Set("Content-Security-Policy", csp)
	// The page holds no data, but a stale script after an upgrade would talk to
	// an API it does not match.
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
