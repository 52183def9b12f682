// Package server is the wiring behind the public wsgate package: it builds
// every part of a running server from a config.Config (listeners, guard,
// integrity, transport, sessions, pipeline, routes, shared state,
// observability) and runs the path of a connection through them.
//
// The path of one connection, in file order:
//
//	server.go      New, the HTTP mux, handleWebSocket (the built-in service's endpoint)
//	gateway.go     routes[] with an upstream and WithRawRoute endpoints
//	integrity.go   the handshake's integrity step and the pipeline's integrity stage
//	realtime.go    the room route (channels, history, presence, commands)
//	hooks.go       application hooks and per-room limits consulted by the room route
//	observe.go     session events → metrics, audit, alerts
//
// Around it: state.go and state_redis.go (stores shared between nodes),
// visibility.go (metrics, audit, alerts), reload.go (Reload under one mutex),
// admin.go and admin_handler.go (the admin listener), serve.go
// (ListenAndServe), dev.go and demo.go (--dev). docs/architecture.md has the
// whole picture.
package server
