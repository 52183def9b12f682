package web

import (
	"embed"
	"net/http"

	jsclient "github.com/wsgate/wsgate/clients/js"
)

// FS holds wsgate.js (the npm package's module, clients/js) at its root.
var FS embed.FS = jsclient.FS

// ClientJS is wsgate.js itself: the file the npm package ships, embedded from
// clients/js, so the served client and the published one are the same bytes.
var ClientJS = jsclient.Source

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
