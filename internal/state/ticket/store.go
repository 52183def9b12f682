package ticket

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/state/shardmap"
)

var (
	// ErrNotFound means the ticket does not exist, was already used or has
	// expired. Callers must not distinguish these to the client.
	ErrNotFound = errors.New("ticket: not found, used or expired")
	// ErrFull means the store is at capacity. Valid tickets are never
	// evicted to make room: under a flood new tickets are refused instead.
	ErrFull = errors.New("ticket: store full")
	// ErrExists means Put was given a ticket that is already stored.
	ErrExists = errors.New("ticket: already exists")
)

// Store keeps tickets. Implementations must make Take atomic: of any number
// of concurrent Takes of one ticket, at most one returns its payload.
type Store interface {
	// Put stores payload under ticket for ttl. It fails with ErrExists when
	// the ticket is already live and ErrFull when the store is at capacity.
	Put(ctx context.Context, ticket string, payload []byte, ttl time.Duration) error
	// Take atomically gets and deletes ticket. It returns ErrNotFound when
	// the ticket is missing, already taken or expired.
	Take(ctx context.Context, ticket string) ([]byte, error)
}

// Defaults for MemoryOptions.
const (
	DefaultMaxEntries    = 100_000
	DefaultSweepInterval = 10 * time.Second
)

// maxKeyBytes bounds keys the memory store accepts, whatever the caller.
const maxKeyBytes = 256

// MemoryOptions configures a MemoryStore.
type MemoryOptions struct {
	// MaxEntries bounds live tickets (default 100000). Stores of 1024 or more
	// are split into 32 shards, each holding MaxEntries/32 (rounded up), so a
	// shard may fill slightly before the whole store does.
	MaxEntries int
	// SweepInterval is how often expired tickets are dropped (default 10s);
	// negative disables the sweeper goroutine (expired tickets are still
	// dropped by Take and when a shard is full).
	SweepInterval time.Duration
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
}

// MemoryStore is the in-memory Store. Close stops its sweeper.
type MemoryStore struct {
	tickets *shardmap.Map[string, entry]
	now     func() time.Time
}

type entry struct {
	payload []byte
	expires time.Time
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns a store and, unless disabled, starts its sweeper.
func NewMemoryStore(opts MemoryOptions) *MemoryStore {
	defaults.Positive(&opts.MaxEntries, DefaultMaxEntries)
	opts.SweepInterval = cmp.Or(opts.SweepInterval, DefaultSweepInterval)
	defaults.Now(&opts.Now)
	n := 1
	if opts.MaxEntries >= 1024 {
		n = 32
	}
	s := &MemoryStore{
		tickets: shardmap.New[string, entry](shardmap.Options{MaxKeys: opts.MaxEntries, Shards: n}),
		now:     opts.Now,
	}
	s.tickets.StartSweeper(opts.SweepInterval, s.expired)
	return s
}

// Close stops the sweeper and waits for it. It is idempotent; the store
// keeps working without the sweeper.
func (s *MemoryStore) Close() {
	s.tickets.Close()
}

func checkKey(key string) error {
	if key == "" || len(key) > maxKeyBytes {
		return fmt.Errorf("ticket: key must be 1..%d bytes", maxKeyBytes)
	}
	return nil
}

// Put implements Store. The payload is copied.
func (s *MemoryStore) Put(ctx context.Context, ticket string, payload []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ticket: put: %w", err)
	}
	if err := checkKey(ticket); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("ticket: ttl must be positive, got %s", ttl)
	}
	now := s.now()
	sh := s.tickets.For(ticket)
	sh.Lock()
	defer sh.Unlock()
	if e, ok := sh.Get(ticket); ok && !e.expired(now) {
		return ErrExists
	}
	if sh.Full() {
		sh.DeleteFunc(s.expiredAt(now))
		if sh.Full() {
			return ErrFull
		}
	}
	sh.Set(ticket, entry{payload: append([]byte(nil), payload...), expires: now.Add(ttl)})
	return nil
}

// Take implements Store.
func (s *MemoryStore) Take(ctx context.Context, ticket string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ticket: take: %w", err)
	}
	if checkKey(ticket) != nil {
		return nil, ErrNotFound
	}
	now := s.now()
	sh := s.tickets.For(ticket)
	sh.Lock()
	e, ok := sh.Get(ticket)
	if ok {
		sh.Delete(ticket)
	}
	sh.Unlock()
	if !ok || e.expired(now) {
		return nil, ErrNotFound
	}
	return e.payload, nil
}

// Len returns the number of stored tickets, expired ones not yet swept
// included (for metrics).
func (s *MemoryStore) Len() int { return s.tickets.Len() }

func (e entry) expired(now time.Time) bool { return !now.Before(e.expires) }

// expired reports the tickets expired now (the sweeper's predicate).
func (s *MemoryStore) expired() func(string, entry) bool { return s.expiredAt(s.now()) }

func (s *MemoryStore) expiredAt(now time.Time) func(string, entry) bool {
	return func(_ string, e entry) bool { return e.expired(now) }
}
