// Package server is the wiring behind the public wsgate package: it builds
// every part of a running server from a config.Config (listeners, guard,
// integrity, transport, sessions, pipeline, routes, shared state,
// observability) and runs the path of a connection through them.
//
// The path of one connection, in file order:
//
//	endpoint.go    endpoint.ServeHTTP: guard → integrity handshake → route.admit → upgrade → session
//	integrity.go   the handshake's integrity step and the pipeline's integrity stage
//	realtime.go    the room route's router (channels, history, presence, commands)
//	hooks.go       application hooks and per-room limits (compiled with the runtime;
//	               the room reaches them through its namespaces' Checks)
//	gateway.go     the upstream route (gateway) and the in-process raw route
//	observe.go     session events → metrics, audit, alerts
//
// compile.go builds a runtime (everything derived from one configuration:
// endpoints, routes, pipelines, guard policy, verifier, keys, hooks) that the Server
// holds in one atomic pointer; reload.go compiles a new one under a mutex and
// swaps it. Around them: server.go (New, the parts that outlive a runtime),
// state.go and state_redis.go (stores shared between nodes), visibility.go
// (metrics, audit, alerts), admin.go and admin_handler.go (the admin
// listener), serve.go (ListenAndServe), dev.go and demo.go (--dev).
// docs/architecture.md has the whole picture.
package server
