// Package web embeds the browser client for wsgate message integrity,
// wsgate.js: a dependency-free ES module (WebCrypto only) that signs
// messages in hmac or pop mode, builds the pop handshake parameters and
// verifies server-signed messages. wsgate serves it at /client/wsgate.js;
// embedding keeps the served file identical to the one tested in headless
// Chromium against the shared vectors (internal/integrity/testdata).
package web
