// Package client is the Go client for wsgate: a connection that stays up and
// the signing code for wsgate's message integrity.
//
// Dial connects and returns a *Client that reconnects on its own with
// exponential backoff and full jitter, honours the server's answers (no loop
// on 401/403, Retry-After on 429/503 and bans, at once after 1001/1012, a new
// token after 4001), refreshes the token in band before it expires,
// resubscribes with the last position so every message arrives exactly once
// and in order (or a RecoveryFailed says what was lost), and matches replies
// to requests by id. The token never goes into a URL.
//
//	c, err := client.Dial(ctx, "wss://host/ws", &client.DialOptions{
//		Token: func(ctx context.Context) (string, error) { return fetchJWT(ctx) },
//	})
//	defer c.Close()
//	sub, err := c.Subscribe(ctx, "chat:lobby", &client.SubscribeOptions{
//		OnMessage:        func(m client.Message) { fmt.Println(string(m.Payload)) },
//		OnRecoveryFailed: func(rf client.RecoveryFailed) { reload() },
//	})
//	_, err = sub.Publish(ctx, map[string]string{"text": "hi"})
//
// Errors are typed for errors.As: *HandshakeError (refused upgrade),
// *ServerError (an error reply, with its code), *CloseError (how a
// connection ended); and sentinels for errors.Is: ErrTimeout, ErrClosed,
// ErrQueueFull, ErrDisconnected. The behaviour shared with the JavaScript and
// Python clients is described in docs/clients.md.
//
// The lower layer is usable on its own: a Signer seals outgoing messages into
// signed envelopes (hmac or pop mode) with increasing seq, fresh nonces and
// the current time, builds the pop handshake parameters, and VerifyServer
// checks messages the server signed against its published JWKS:
//
//	s, _ := client.NewHMACSigner(kid, key, subject, nil) // key from the ticket endpoint
//	// dial, read the welcome message, then:
//	s.Bind(connID)
//	frame, _ := s.Seal([]byte(`{"type":"chat.send","text":"hi"}`))
//
// The wire format is specified in docs/protocol.md and docs/integrity.md.
package client
