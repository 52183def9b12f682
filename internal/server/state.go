package server

import (
	"context"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/conn/integrity"
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/session"
	"github.com/wsgate/wsgate/internal/state/ban"
	"github.com/wsgate/wsgate/internal/state/broker"
	"github.com/wsgate/wsgate/internal/state/limit"
	"github.com/wsgate/wsgate/internal/state/quota"
	"github.com/wsgate/wsgate/internal/state/ticket"
)

// stores is the state a node shares with other nodes: in memory by default, in
// Redis with state.backend: redis. Everything else in the server is per node.
type stores struct {
	limiter limit.Limiter
	// roomLimiter answers the per-room limits (hooks.go): exact across nodes
	// (a game's "2 moves per member" must not admit a third on another node),
	// at one Redis round trip per publication in a limited room. Nil: limiter.
	roomLimiter limit.Limiter
	quota       quota.Store
	bans        ban.List
	// strikes counts strikes cluster-wide (nil: each node counts its own).
	strikes ban.Counter
	// kick closes a banned subject's connections on every node (this one
	// included); kickCluster is the same, nil when there are no other nodes.
	kick        func(ctx context.Context, subject string) error
	kickCluster func(ctx context.Context, subject string) error
	tickets     ticket.Store
	replay      integrity.ReplayCache
	broker      broker.Broker
	// ping reports whether the shared store answers (nil for memory).
	ping func(ctx context.Context) error
}

// newStores builds the configured backend; closers are registered on s.
func (s *Server) newStores(cfg *config.Config) (*stores, error) {
	if cfg.State.Backend == "redis" {
		return s.newRedisStores(cfg)
	}
	return s.newMemoryStores(cfg), nil
}

func (s *Server) newMemoryStores(cfg *config.Config) *stores {
	lim := limit.NewMemory(limit.MemoryOptions{})
	s.onClose(func() { _ = lim.Close() })
	tk := ticket.NewMemoryStore(ticket.MemoryOptions{MaxEntries: cfg.Auth.Tickets.MaxEntries})
	s.onClose(tk.Close)
	return &stores{
		limiter: lim,
		quota:   quota.NewMemoryStore(),
		bans:    ban.NewMemoryList(100000),
		kick: func(_ context.Context, subject string) error {
			s.kickLocal(subject)
			return nil
		},
		tickets: tk,
		replay:  integrity.NewMemoryReplayCache(cfg.Integrity.ReplayCacheSize),
		broker:  broker.NewMemory(broker.MemoryOptions{}),
	}
}

// kickLocal closes this node's connections whose ban subject is exactly subject
// (the user's, or the per-IP key's: a ban on one address or prefix never closes
// a client merely near it), with 1008 "banned".
func (s *Server) kickLocal(subject string) {
	var hit []*session.Session
	s.registry.Range(func(ss *session.Session) bool {
		if ban.IPSubject(ss.IPKey()) == subject || (ss.User() != "" && ban.UserSubject(ss.User()) == subject) {
			hit = append(hit, ss)
		}
		return true
	})
	for _, ss := range hit {
		ss.CloseAsync(protocol.ReasonBanned)
	}
	if len(hit) > 0 {
		s.log.Info("banned subject's connections closed", "subject", subject, "closed", len(hit))
	}
}
