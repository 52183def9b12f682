// Package jsclient embeds the JavaScript client (wsgate.js) so the Go server
// can serve the very file the npm package ships: one source, no copy to keep
// in step. The JavaScript itself is documented in docs/clients.md.
package jsclient

import "embed"

// FS holds wsgate.js and its TypeScript declarations at its root.
//
//go:embed wsgate.js wsgate.d.ts
var FS embed.FS

// Source is wsgate.js itself.
//
//go:embed wsgate.js
var Source []byte
