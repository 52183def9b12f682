package transport

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
)

// HandshakeError is a refused upgrade request: the HTTP status to answer,
// a short static reason and headers to add (426 carries
// Sec-WebSocket-Version: 13).
type HandshakeError struct {
	Status int
	Reason string
	Header http.Header
}

// Error implements error.
func (e *HandshakeError) Error() string {
	return "websocket handshake: " + strconv.Itoa(e.Status) + " " + e.Reason
}

// WriteResponse answers the request with the error's status, headers and
// reason as a plain-text body.
func (e *HandshakeError) WriteResponse(w http.ResponseWriter) {
	for k, vs := range e.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	_, _ = w.Write([]byte(e.Reason + "\n"))
}

func badRequest(reason string) *HandshakeError {
	return &HandshakeError{Status: http.StatusBadRequest, Reason: reason}
}

// ValidateUpgradeRequest checks the protocol part of an opening handshake
// (RFC 6455 §4.2.1) and returns nil when it is a valid WebSocket upgrade.
// Malformed requests get 400; an unsupported Sec-WebSocket-Version gets 426
// with "Sec-WebSocket-Version: 13" (§4.2.2). WebSocket over HTTP/2 (RFC 8441)
// is not supported: only HTTP/1.1 and later 1.x requests pass.
func ValidateUpgradeRequest(r *http.Request) *HandshakeError {
	if r.Method != http.MethodGet {
		return badRequest("websocket upgrade requires GET")
	}
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		return badRequest("websocket upgrade requires HTTP/1.1")
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		return badRequest("missing Connection: upgrade")
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		return badRequest("missing Upgrade: websocket")
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 || !validKey(keys[0]) {
		return badRequest("invalid Sec-WebSocket-Key")
	}
	if v := r.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
		return &HandshakeError{
			Status: http.StatusUpgradeRequired,
			Reason: "unsupported Sec-WebSocket-Version",
			Header: http.Header{"Sec-Websocket-Version": {"13"}},
		}
	}
	return nil
}

// validKey: the key is base64 of exactly 16 bytes, so 24 characters with
// "==" padding.
func validKey(k string) bool {
	k = strings.TrimSpace(k)
	if len(k) != 24 {
		return false
	}
	var buf [18]byte
	n, err := base64.StdEncoding.Decode(buf[:], []byte(k))
	return err == nil && n == 16
}

// headerHasToken reports whether any value of header name is a
// comma-separated list containing token (case-insensitive).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// validToken reports whether s is an RFC 7230 token, the syntax of a
// subprotocol name; anything else must never reach a response header.
func validToken(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
