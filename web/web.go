package web

// wsgate.js is a copy of clients/js/wsgate.js (the npm package's only
// module): go:embed cannot reach outside this directory. TestServedIsSDK
// fails when the two differ.
//go:generate cp ../clients/js/wsgate.js wsgate.js

import (
	"embed"
	"net/http"
)

// FS holds wsgate.js at its root.
//
//go:embed wsgate.js
var FS embed.FS

// ClientJS is wsgate.js itself.
//
//go:embed wsgate.js
var ClientJS []byte

// ContentType is the MIME type browsers require for ES modules.
const ContentType = "text/javascript; charset=utf-8"

// Handler serves ClientJS (mount it at /client/wsgate.js). Cacheable for a
// short while only, so a fixed client reaches browsers soon after a deploy.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ContentType)
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(ClientJS)
	})
}
