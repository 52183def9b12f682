package wsgate

import (
	"context"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/ban"
	"github.com/wsgate/wsgate/internal/broker"
	"github.com/wsgate/wsgate/internal/integrity"
	"github.com/wsgate/wsgate/internal/limit"
	"github.com/wsgate/wsgate/internal/quota"
	"github.com/wsgate/wsgate/internal/ticket"
)

// stores is the state a node shares with other nodes: in memory by default, in
// Redis with state.backend: redis. Everything else in the server is per node.
type stores struct {
	limiter limit.Limiter
	quota   quota.Store
	bans    ban.List
	tickets ticket.Store
	replay  integrity.ReplayCache
	broker  broker.Broker
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
		tickets: tk,
		replay:  integrity.NewMemoryReplayCache(cfg.Integrity.ReplayCacheSize),
		broker:  broker.NewMemory(broker.MemoryOptions{}),
	}
}
