// Package web embeds the JavaScript client, wsgate.js: a dependency-free ES
// module (WebCrypto only) with the reconnecting Client (token getter,
// backoff, recovery, requests) and the integrity layer that signs messages in
// hmac or pop mode, builds the pop handshake parameters and verifies
// server-signed messages. It is clients/js/wsgate.js, the npm package's
// module, embedded from there (package jsclient). wsgate serves it at
// /client/wsgate.js; embedding keeps the served file identical to the one
// tested in headless Chromium against the shared vectors
// (internal/conn/integrity/testdata) and against a real server.
package web
