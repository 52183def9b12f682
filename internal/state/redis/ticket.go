package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/conn/integrity"
	"github.com/wsgate/wsgate/internal/state/ticket"
)

// maxTicketKey mirrors the memory store's bound on ticket strings.
const maxTicketKey = 256

// TicketStore is a ticket.Store in Redis: SET NX PX to issue, GETDEL to redeem,
// so a ticket is used at most once across all nodes. Errors fail closed: Take
// returns an error, never a payload, when Redis cannot answer. Capacity is
// Redis' (maxmemory); ErrFull is never returned.
type TicketStore struct {
	rdb goredis.UniversalClient
	c   *Client
}

// TicketStore returns the client's ticket store.
func (c *Client) TicketStore() *TicketStore { return &TicketStore{rdb: c.rdb, c: c} }

// Put implements ticket.Store.
func (s *TicketStore) Put(ctx context.Context, t string, payload []byte, ttl time.Duration) error {
	if t == "" || len(t) > maxTicketKey {
		return fmt.Errorf("redis ticket: key must be 1..%d bytes", maxTicketKey)
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("redis ticket: ttl must be at least 1ms, got %s", ttl)
	}
	ok, err := s.rdb.SetNX(ctx, s.c.key("t:", t), payload, ttl).Result()
	if err != nil {
		return fmt.Errorf("redis ticket: put: %w", err)
	}
	if !ok {
		return ticket.ErrExists
	}
	return nil
}

// Take implements ticket.Store.
func (s *TicketStore) Take(ctx context.Context, t string) ([]byte, error) {
	if t == "" || len(t) > maxTicketKey {
		return nil, ticket.ErrNotFound
	}
	b, err := s.rdb.GetDel(ctx, s.c.key("t:", t)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, ticket.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis ticket: take: %w", err)
	}
	return b, nil
}

// ReplayCache is an integrity.ReplayCache in Redis: SET NX PX is the atomic
// check-and-set, so a nonce seen on any node is a duplicate on every node. On a
// Redis error Seen reports dup=true with the error (fail closed).
type ReplayCache struct {
	rdb goredis.UniversalClient
	c   *Client
}

// ReplayCache returns the client's replay cache.
func (c *Client) ReplayCache() *ReplayCache { return &ReplayCache{rdb: c.rdb, c: c} }

// Seen implements integrity.ReplayCache.
func (r *ReplayCache) Seen(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl < time.Millisecond {
		return true, fmt.Errorf("redis replay cache: ttl must be at least 1ms, got %s", ttl)
	}
	ok, err := r.rdb.SetNX(ctx, r.c.key("n:", key), "1", ttl).Result()
	if err != nil {
		return true, fmt.Errorf("redis replay cache: %w", err)
	}
	return !ok, nil
}

// Interface guards.
var (
	_ ticket.Store          = (*TicketStore)(nil)
	_ integrity.ReplayCache = (*ReplayCache)(nil)
)
