package redis

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Defaults for Options.
const (
	DefaultPrefix       = "wsgate:"
	DefaultLeaseTTL     = 15 * time.Second
	DefaultDialTimeout  = 2 * time.Second
	DefaultReadTimeout  = time.Second
	DefaultWriteTimeout = time.Second
)

// Options configures New. Only Addrs is required.
type Options struct {
	// Addrs: one host:port for a single server; several for Cluster; with
	// MasterName, the Sentinel addresses.
	Addrs      []string
	MasterName string
	Username   string
	Password   string
	DB         int
	TLS        *tls.Config
	// Prefix starts every key and pub/sub channel (default "wsgate:"), so that
	// several deployments can share one Redis. It must not contain '{' or '}':
	// the keys use hash tags to keep multi-key scripts in one Cluster slot.
	Prefix string
	// NodeID names this node in quota leases and presence. It must be unique per
	// process; the default is hostname-pid-random, so a restarted node is a new
	// node and the leases of the old one simply expire.
	NodeID string
	// LeaseTTL is how long a node's quota counts and presence entries outlive its
	// last heartbeat (default 15s); heartbeats run every LeaseTTL/3. A node killed
	// with SIGKILL stops counting after at most LeaseTTL.
	LeaseTTL time.Duration
	// DialTimeout, ReadTimeout, WriteTimeout bound every Redis call (defaults 2s,
	// 1s, 1s): short, because a hung Redis must turn into the documented failure
	// policy quickly rather than stall handshakes.
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// PoolSize is go-redis' connection pool size per node (0: go-redis default,
	// 10 per CPU).
	PoolSize int
	// SkipPing makes New return without checking that Redis answers (for a node
	// that must start while Redis is down; Ping reports readiness later).
	SkipPing bool
	// Logger receives the package's warnings (default slog.Default()); wsgate
	// passes its JSON logger so that Redis losses and outages show up there.
	Logger *slog.Logger
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	if len(o.Addrs) == 0 {
		return errors.New("redis: no address")
	}
	for _, a := range o.Addrs {
		if a == "" {
			return errors.New("redis: empty address")
		}
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return fmt.Errorf("redis: prefix %q must not contain '{' or '}'", o.Prefix)
	}
	if o.LeaseTTL < 0 || o.DialTimeout < 0 || o.ReadTimeout < 0 || o.WriteTimeout < 0 {
		return errors.New("redis: negative duration")
	}
	if o.LeaseTTL > 0 && o.LeaseTTL < 300*time.Millisecond {
		return fmt.Errorf("redis: lease ttl %v is below 300ms", o.LeaseTTL)
	}
	if o.DB < 0 {
		return fmt.Errorf("redis: negative db %d", o.DB)
	}
	return nil
}

func (o Options) withDefaults() Options {
	o.Prefix = cmp.Or(o.Prefix, DefaultPrefix)
	if o.NodeID == "" {
		host, _ := os.Hostname()
		o.NodeID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), rand.Text()[:6])
	}
	o.LeaseTTL = cmp.Or(o.LeaseTTL, DefaultLeaseTTL)
	o.DialTimeout = cmp.Or(o.DialTimeout, DefaultDialTimeout)
	o.ReadTimeout = cmp.Or(o.ReadTimeout, DefaultReadTimeout)
	o.WriteTimeout = cmp.Or(o.WriteTimeout, DefaultWriteTimeout)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Client is one node's connection to the shared Redis and the factory of its
// stores. Close it last: it stops every store's goroutines.
type Client struct {
	rdb  goredis.UniversalClient
	opts Options

	mu      sync.Mutex
	closed  bool
	closers []func()
	quota   *QuotaStore
	bans    *BanList

	brk *breaker // shared by the stores: see breaker
}

// New connects to Redis. Unless opts.SkipPing, it returns an error when Redis
// does not answer a PING within ctx.
func New(ctx context.Context, opts Options) (*Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	quietGoRedis()
	opts = opts.withDefaults()
	rdb := goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs:        opts.Addrs,
		MasterName:   opts.MasterName,
		Username:     opts.Username,
		Password:     opts.Password,
		DB:           opts.DB,
		TLSConfig:    opts.TLS,
		DialTimeout:  opts.DialTimeout,
		ReadTimeout:  opts.ReadTimeout,
		WriteTimeout: opts.WriteTimeout,
		PoolSize:     opts.PoolSize,
		ClientName:   "wsgate",
		// Deadlines of callers' contexts bound socket reads and writes too, so
		// a hot path can give Redis less than ReadTimeout (the limiter does).
		ContextTimeoutEnabled: true,
		// One retry: a pooled connection broken by a Redis restart is retried on a
		// fresh one, but a Redis that is down fails fast into the failure policy.
		MaxRetries:    1,
		DialerRetries: 1,
	})
	c := &Client{rdb: rdb, opts: opts}
	c.brk = newBreaker(opts.Logger, func(ctx context.Context) error { return rdb.Ping(ctx).Err() }, opts.DialTimeout+opts.ReadTimeout, time.Second)
	if !opts.SkipPing {
		if err := c.Ping(ctx); err != nil {
			c.brk.close() // the failed ping started a probe (found by goleak)
			_ = rdb.Close()
			return nil, err
		}
	}
	return c, nil
}

// NodeID returns this node's id (see Options.NodeID).
func (c *Client) NodeID() string { return c.opts.NodeID }

// Redis returns the underlying go-redis client, for metrics and tests.
func (c *Client) Redis() goredis.UniversalClient { return c.rdb }

// Ping reports whether Redis answers; /readyz uses it.
func (c *Client) Ping(ctx context.Context) error {
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		c.brk.observe(err)
		return fmt.Errorf("redis: ping: %w", err)
	}
	return nil
}

// Reachable reports false while operations fail fast because Redis was found
// unreachable (ErrUnavailable) and has not answered a probe since.
func (c *Client) Reachable() bool { return !c.brk.Open() }

// onClose registers f to run (in reverse order) on Close. It reports false, and
// does not register, when the client is already closed.
func (c *Client) onClose(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.closers = append(c.closers, f)
	return true
}

// Close stops every store this client handed out (their goroutines end before
// Close returns), removes this node's quota leases and closes the connections.
// It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	closers := c.closers
	c.closers = nil
	c.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	c.brk.close()
	if err := c.rdb.Close(); err != nil {
		return fmt.Errorf("redis: close: %w", err)
	}
	return nil
}

var errClosed = errors.New("redis: client closed")

// key builds a key under the configured prefix.
func (c *Client) key(parts ...string) string {
	var b strings.Builder
	b.WriteString(c.opts.Prefix)
	for _, p := range parts {
		b.WriteString(p)
	}
	return b.String()
}

// backoff sleeps for d or until stop closes; it reports false when stopped.
func backoff(stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}
