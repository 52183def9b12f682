// Package e2e holds wsgate's end-to-end tests: real servers on loopback
// (internal/tools/wsgatetest), real TLS, real Redis and real browsers where a test
// needs them, driven through the public API (package wsgate) and the wire.
package e2e
