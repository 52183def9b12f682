// Package client is the Go side of wsgate message integrity for programs
// that talk to a wsgate server: it seals outgoing messages into signed
// envelopes (hmac or pop mode) with increasing seq, fresh nonces and the
// current time, builds the pop handshake parameters, and verifies messages
// the server signed against its published JWKS.
//
// Typical hmac use:
//
//	s, _ := client.NewHMACSigner(kid, key, subject, nil) // key from the ticket endpoint
//	// dial, read the welcome message, then:
//	s.Bind(connID)
//	frame, _ := s.Seal([]byte(`{"type":"chat.send","text":"hi"}`))
//
// The wire format is specified in docs/integrity.md.
package client
