package wsgate

import "github.com/wsgate/wsgate/config"

// newRedisStores builds the Redis implementations of every shared store.
func (s *Server) newRedisStores(*config.Config) (*stores, error) {
	return nil, errNoRedis
}
