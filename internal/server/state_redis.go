package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/wsgate/wsgate/config"
	clusterredis "github.com/wsgate/wsgate/internal/state/redis"
)

// redisConnectTimeout bounds the startup PING: a misconfigured address fails
// the start instead of serving with shared state that does not work.
const redisConnectTimeout = 10 * time.Second

// newRedisStores builds the Redis implementations of every shared store
// (internal/state/redis; failure policies in docs/scaling.md).
func (s *Server) newRedisStores(cfg *config.Config) (*stores, error) {
	rc := cfg.State.Redis
	var tlsCfg *tls.Config
	if rc.TLS {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		if rc.CAFile != "" {
			pem, err := os.ReadFile(rc.CAFile)
			if err != nil {
				return nil, fmt.Errorf("state.redis.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("state.redis.ca_file %s: no PEM certificate", rc.CAFile)
			}
			tlsCfg.RootCAs = pool
		}
	}
	s.redactor.Add(rc.Password)
	ctx, cancel := context.WithTimeout(context.Background(), redisConnectTimeout)
	defer cancel()
	c, err := clusterredis.New(ctx, clusterredis.Options{
		Addrs:      rc.Addrs,
		MasterName: rc.MasterName,
		Username:   rc.Username,
		Password:   rc.Password,
		DB:         rc.DB,
		TLS:        tlsCfg,
		Prefix:     rc.Prefix,
		LeaseTTL:   rc.LeaseTTL,
		Logger:     s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("state.backend redis: %w", err)
	}
	// Registered first, so it runs last: after everything that uses the stores.
	s.onClose(func() { _ = c.Close() })
	// History is kept as configured: the broker's default cap (1000) is raised
	// to the largest namespace history_size instead of cutting it silently.
	// A larger size set by a later reload is capped, with a warning.
	maxHistory := clusterredis.DefaultMaxHistorySize
	for _, ns := range cfg.Channels.Namespaces {
		maxHistory = max(maxHistory, ns.HistorySize)
	}
	br, err := c.Broker(clusterredis.BrokerOptions{MaxHistorySize: maxHistory})
	if err != nil {
		return nil, fmt.Errorf("state.backend redis: %w", err)
	}
	bans := c.BanList(clusterredis.BanOptions{OnKick: s.kickLocal})
	return &stores{
		limiter: c.Limiter(clusterredis.LimiterOptions{FailOpen: rc.LimitsFailOpen}),
		// Room limits are small budgets (a few publications per member or
		// channel) that leases would over-admit by up to one local burst per
		// node: no leases, one synchronous call (bounded by its timeout).
		roomLimiter: c.Limiter(clusterredis.LimiterOptions{FailOpen: rc.LimitsFailOpen, LeaseFraction: -1}),
		quota:       c.QuotaStore(),
		bans:        bans,
		strikes:     c.StrikeCounter(),
		// Published to every node, this one included.
		kick:        bans.Kick,
		kickCluster: bans.Kick,
		tickets:     c.TicketStore(),
		replay:      c.ReplayCache(),
		broker:      br,
		ping:        c.Ping,
	}, nil
}
