// Package wsgate is a secure WebSocket server and gateway.
//
// wsgate.New builds a Server from a config.Config; the Server is an http.Handler that
// guards every WebSocket handshake (credential, Origin, rate, bans, quotas), runs
// every message through a validating pipeline, and routes accepted messages to the
// built-in real-time core (channels, history, presence) or to an upstream WebSocket
// backend (gateway mode).
//
//	cfg, _ := config.Load("wsgate.yaml", os.Environ())
//	srv, err := wsgate.New(cfg)
//	if err != nil { ... }
//	defer srv.Shutdown(ctx)
//	http.ListenAndServeTLS(":8443", "cert.pem", "key.pem", srv)
//
// ListenAndServe does the listening itself, with the TLS, mTLS and slowloris limits
// from the configuration, plus the separate admin listener.
//
// Go code can serve messages in the same process: WithHandler answers a custom
// message type after the pipeline accepted it, WithRawRoute mounts a raw endpoint
// (guard and raw checks, then opaque frames to a RawHandler), WithCommandHandler
// answers `command` messages. See the examples.
package wsgate
