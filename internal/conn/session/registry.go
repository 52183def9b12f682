package session

import (
	"context"
	"hash/maphash"
	"sync"

	"github.com/wsgate/wsgate/internal/conn/protocol"
)

const registryShards = 64

// Registry tracks live sessions for the admin API, kicks and graceful shutdown
// (http.Server.Shutdown does not know about hijacked connections).
type Registry struct {
	seed   maphash.Seed
	shards [registryShards]struct {
		sync.RWMutex
		m map[string]*Session
	}
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].m = make(map[string]*Session)
	}
	return r
}

func (r *Registry) shard(id string) int { return int(maphash.String(r.seed, id) % registryShards) }

func (r *Registry) add(s *Session) {
	sh := &r.shards[r.shard(s.id)]
	sh.Lock()
	sh.m[s.id] = s
	sh.Unlock()
}

func (r *Registry) remove(s *Session) {
	sh := &r.shards[r.shard(s.id)]
	sh.Lock()
	delete(sh.m, s.id)
	sh.Unlock()
}

// Get returns the live session with id.
func (r *Registry) Get(id string) (*Session, bool) {
	sh := &r.shards[r.shard(id)]
	sh.RLock()
	s, ok := sh.m[id]
	sh.RUnlock()
	return s, ok
}

// Len counts live sessions.
func (r *Registry) Len() int {
	n := 0
	for i := range r.shards {
		r.shards[i].RLock()
		n += len(r.shards[i].m)
		r.shards[i].RUnlock()
	}
	return n
}

// Range calls f for each live session until f returns false. f must not block.
func (r *Registry) Range(f func(*Session) bool) {
	for i := range r.shards {
		r.shards[i].RLock()
		list := make([]*Session, 0, len(r.shards[i].m))
		for _, s := range r.shards[i].m {
			list = append(list, s)
		}
		r.shards[i].RUnlock()
		for _, s := range list {
			if !f(s) {
				return
			}
		}
	}
}

// CloseAll sends reason to every session and waits until all have ended or ctx is
// done. It returns the number still open when it gave up.
func (r *Registry) CloseAll(ctx context.Context, reason protocol.CloseReason) int {
	var all []*Session
	r.Range(func(s *Session) bool { all = append(all, s); return true })
	for _, s := range all {
		s.CloseAsync(reason)
	}
	for _, s := range all {
		select {
		case <-s.Done():
		case <-ctx.Done():
			left := 0
			for _, s := range all {
				select {
				case <-s.Done():
				default:
					left++
					_ = s.conn.Close() // drain time is over: drop the socket
				}
			}
			return left
		}
	}
	return 0
}
