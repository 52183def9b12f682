package session

import (
	"context"

	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/state/shardmap"
)

// registryShards spreads sessions over shards so that connects and
// disconnects on many cores do not all take one lock.
const registryShards = 64

// Registry tracks live sessions for the admin API, kicks and graceful shutdown
// (http.Server.Shutdown does not know about hijacked connections). It is
// unbounded: the listener's connection limits bound it.
type Registry struct {
	m *shardmap.Map[string, *Session]
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{m: shardmap.New[string, *Session](shardmap.Options{Shards: registryShards})}
}

func (r *Registry) add(s *Session) {
	sh := r.m.For(s.state.ConnID)
	sh.Lock()
	sh.Set(s.state.ConnID, s)
	sh.Unlock()
}

func (r *Registry) remove(s *Session) {
	sh := r.m.For(s.state.ConnID)
	sh.Lock()
	sh.Delete(s.state.ConnID)
	sh.Unlock()
}

// Get returns the live session with id.
func (r *Registry) Get(id string) (*Session, bool) {
	sh := r.m.For(id)
	sh.RLock()
	s, ok := sh.Get(id)
	sh.RUnlock()
	return s, ok
}

// Len counts live sessions.
func (r *Registry) Len() int { return r.m.Len() }

// Range calls f for each live session until f returns false. f must not block.
func (r *Registry) Range(f func(*Session) bool) {
	r.m.Range(func(_ string, s *Session) bool { return f(s) })
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
