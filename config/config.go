// Package config is wsgate's configuration: one typed struct, loaded from a YAML file,
// then WSGATE_* environment variables, then command-line flags (each later source wins),
// and validated as a whole before anything starts.
//
// The struct is the documentation: every field says what it does and its default.
// Defaults are secure; anything that loosens security is opt-in, named for what it
// loosens (InsecurePlaintext, AllowQueryToken) and logged at start.
package config

import (
	"crypto/tls"
	"strings"
	"time"
)

// Duration fields accept Go duration strings ("30s", "5m", "1h30m").

// Config is the whole configuration of one wsgate node.
type Config struct {
	// Listen is the address of the WebSocket listener. Default "127.0.0.1:8443".
	Listen string `koanf:"listen"`
	// Path is the URL path of the built-in real-time endpoint. Default "/ws".
	Path string `koanf:"path"`
	// InsecurePlaintext serves ws:// without TLS, for running behind a TLS-terminating
	// proxy only. Off by default; logged as a warning at start.
	InsecurePlaintext bool `koanf:"insecure_plaintext"`
	// TrustedProxies are CIDRs whose X-Forwarded-For / Forwarded headers are believed.
	// Empty by default: the client IP is the socket's peer address.
	TrustedProxies []string `koanf:"trusted_proxies"`

	TLS         TLS         `koanf:"tls"`
	Timeouts    Timeouts    `koanf:"timeouts"`
	Auth        Auth        `koanf:"auth"`
	Origins     Origins     `koanf:"origins"`
	Limits      Limits      `koanf:"limits"`
	Rate        Rate        `koanf:"rate"`
	Abuse       Abuse       `koanf:"abuse"`
	Compression Compression `koanf:"compression"`
	Transport   Transport   `koanf:"transport"`
	Schemas     Schemas     `koanf:"schemas"`
	Channels    Channels    `koanf:"channels"`
	Command     Command     `koanf:"command"`
	Hooks       Hooks       `koanf:"hooks"`
	Integrity   Integrity   `koanf:"integrity"`
	Encryption  Encryption  `koanf:"encryption"`
	Admin       Admin       `koanf:"admin"`
	Audit       Audit       `koanf:"audit"`
	Alerts      Alerts      `koanf:"alerts"`
	Log         Log         `koanf:"log"`
	State       State       `koanf:"state"`
	Routes      []Route     `koanf:"routes"`

	// Dev is set by `wsgate serve --dev` only; it is not read from files.
	Dev bool `koanf:"-"`

	// pos says where each key was set (file:line:column or the variable), for
	// Validate's messages; nil for a Config built in code.
	pos positions
}

// TLS configures the WebSocket listener's TLS and optional client certificates (mTLS).
type TLS struct {
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
	// MinVersion is "1.2" (default, modern AEAD suites only) or "1.3".
	MinVersion string `koanf:"min_version"`
	// ClientCAFile enables mTLS: client certificates must chain to these CAs.
	ClientCAFile string `koanf:"client_ca_file"`
	// ClientAuth is "none" (default), "verify_if_given" or "require".
	ClientAuth string `koanf:"client_auth"`
	// IdentityFrom picks the identity in a client certificate: "san" (default) or "cn".
	IdentityFrom string `koanf:"identity_from"`
	// Certificate, set by programs (dev mode, tests, embedding), is used instead of
	// the files. It cannot come from a file or the environment.
	Certificate *tls.Certificate `koanf:"-"`
}

// Timeouts bound every phase of a connection's life.
type Timeouts struct {
	ReadHeader   time.Duration `koanf:"read_header"`   // default 5s (slowloris)
	Handshake    time.Duration `koanf:"handshake"`     // whole upgrade request, default 10s
	Idle         time.Duration `koanf:"idle"`          // no message from the client, default 5m
	PingInterval time.Duration `koanf:"ping_interval"` // server keepalive ping, default 25s
	PongTimeout  time.Duration `koanf:"pong_timeout"`  // default 10s
	Write        time.Duration `koanf:"write"`         // every write, default 10s
	Drain        time.Duration `koanf:"drain"`         // graceful shutdown, default 10s
}

// Auth selects and configures the credentials a handshake must carry.
type Auth struct {
	// Mode is "jwt" (default), "mtls", "jwt_or_mtls" or "jwt_and_mtls".
	Mode string `koanf:"mode"`
	Keys []Key  `koanf:"keys"`
	// JWKSURL is fetched at start and refreshed; an unknown kid triggers a rate-limited refresh.
	JWKSURL        string        `koanf:"jwks_url"`
	JWKSRefresh    time.Duration `koanf:"jwks_refresh"`     // default 10m
	JWKSMinRefresh time.Duration `koanf:"jwks_min_refresh"` // default 30s
	Issuer         string        `koanf:"issuer"`
	Audience       []string      `koanf:"audience"`
	Leeway         time.Duration `koanf:"leeway"`       // default 5s
	MaxLifetime    time.Duration `koanf:"max_lifetime"` // default 24h
	SubjectClaim   string        `koanf:"subject_claim"`
	// TierClaim names the claim that picks a rate-limit tier. Default "tier".
	TierClaim string `koanf:"tier_claim"`
	// CookieName, when set, lets browsers carry the token in this cookie.
	CookieName string `koanf:"cookie_name"`
	// AllowQueryToken accepts ?token= (tokens in URLs end up in logs and history). Off by default.
	AllowQueryToken bool    `koanf:"allow_query_token"`
	Tickets         Tickets `koanf:"tickets"`
}

// Key is one JWT verification key with its algorithm allow-list.
type Key struct {
	ID         string   `koanf:"id"`
	Algorithms []string `koanf:"algorithms"`
	// Secret is an HMAC secret: "base64:<b64>" or raw text, at least 32 bytes.
	Secret        string `koanf:"secret"`
	PublicKeyFile string `koanf:"public_key_file"`
	PublicKeyPEM  string `koanf:"public_key_pem"`
}

// Tickets are one-time handshake credentials for browsers (POST /v1/tickets).
type Tickets struct {
	Enabled    bool          `koanf:"enabled"`     // default true
	TTL        time.Duration `koanf:"ttl"`         // default 30s
	MaxEntries int           `koanf:"max_entries"` // default 100000
}

// Origins is the Origin allow-list (cross-site WebSocket hijacking defence).
type Origins struct {
	// Allowed lists exact origins ("https://app.example.com") and patterns
	// ("https://*.example.com"). Empty: only same-origin requests (Origin host == Host).
	Allowed []string `koanf:"allowed"`
	// AllowMissing admits requests without an Origin header (non-browser clients; a
	// browser always sends one, so this does not open CSWSH). Default true.
	AllowMissing bool `koanf:"allow_missing"`
}

// Limits are the hard limits of the handshake and of every connection.
type Limits struct {
	MaxHeaderBytes  int            `koanf:"max_header_bytes"`  // default 8192
	MaxMessageBytes int            `koanf:"max_message_bytes"` // default 8192
	MaxFragments    int            `koanf:"max_fragments"`     // default 64
	AllowBinary     bool           `koanf:"allow_binary"`      // default false (close 1003)
	TypeMaxBytes    map[string]int `koanf:"type_max_bytes"`
	JSON            JSONLimits     `koanf:"json"`
	// HandshakeRate is the per-IP token bucket for upgrade requests.
	HandshakeRate RateLimit `koanf:"handshake_rate"`
	// IPv4Prefix and IPv6Prefix say how many leading bits of a client address
	// are one client for every per-IP control (handshake rate, connection and
	// pending caps, IP message/byte budgets, IP bans, per-IP alerts). Defaults
	// 32 and 64: an IPv6 customer holds a whole /64, so keying on the full
	// address would hand an attacker 2^64 fresh buckets.
	IPv4Prefix  int         `koanf:"ipv4_prefix"`
	IPv6Prefix  int         `koanf:"ipv6_prefix"`
	Connections Connections `koanf:"connections"`
	Outbox      Outbox      `koanf:"outbox"`
}

// JSONLimits bound the structure of a message before any schema work.
type JSONLimits struct {
	MaxDepth     int `koanf:"max_depth"`      // default 32
	MaxKeys      int `koanf:"max_keys"`       // default 128
	MaxArrayLen  int `koanf:"max_array_len"`  // default 1024
	MaxStringLen int `koanf:"max_string_len"` // default 4096
}

// RateLimit is a token bucket: Rate per second, bursting to Burst. Rate 0 disables it.
type RateLimit struct {
	Rate  float64 `koanf:"rate"`
	Burst int     `koanf:"burst"`
}

// Connections are concurrent connection quotas; 0 means unlimited.
type Connections struct {
	PerIP   int `koanf:"per_ip"`   // default 100
	PerUser int `koanf:"per_user"` // default 10
	Global  int `koanf:"global"`   // default 19000 (one process may hold 20,000 files here)
	// PendingPerIP bounds connections from one IP that are open but have not
	// finished their handshake (silent sockets exhaust file descriptors before any
	// check runs); trusted proxies are exempt. Default 256; 0 = unlimited.
	PendingPerIP int `koanf:"pending_per_ip"`
	// PendingTotal bounds all such connections. Default 4096; 0 = unlimited.
	PendingTotal int `koanf:"pending_total"`
}

// Outbox bounds each connection's write queue (slow consumers are closed).
type Outbox struct {
	MaxMessages int `koanf:"max_messages"` // default 256
	MaxBytes    int `koanf:"max_bytes"`    // default 1 MiB
}

// Rate configures message and byte rate limits, by tier.
type Rate struct {
	// Tiers by name; "default" applies when the token names no (known) tier.
	Tiers map[string]Tier `koanf:"tiers"`
	// FailOpen lets messages through when the limit store cannot answer. Default false.
	FailOpen bool `koanf:"fail_open"`
	// AbuseLimited closes a connection (1008) after this many rate-limited messages
	// within AbuseWindow. Default 50 in 10s.
	AbuseLimited int           `koanf:"abuse_limited"`
	AbuseWindow  time.Duration `koanf:"abuse_window"`
}

// Tier is one set of message/byte budgets per connection, per user and per IP.
type Tier struct {
	Messages     RateLimit `koanf:"messages"`
	Bytes        RateLimit `koanf:"bytes"`
	UserMessages RateLimit `koanf:"user_messages"`
	UserBytes    RateLimit `koanf:"user_bytes"`
	IPMessages   RateLimit `koanf:"ip_messages"`
	IPBytes      RateLimit `koanf:"ip_bytes"`
}

// Abuse is the strike and ban policy.
type Abuse struct {
	Window     time.Duration `koanf:"window"`      // default 1m
	MaxStrikes int           `koanf:"max_strikes"` // default 10; 0 disables bans
	BanTTL     time.Duration `koanf:"ban_ttl"`     // default 10m
	// BanIP also bans the client's IP key for message-level strikes. Default
	// false: strikes come from authenticated users, and one user's strikes must
	// not lock out everyone behind the same NAT or office address. IP bans come
	// from unauthenticated abuse instead: the auto_ban alert rules (by default
	// auth_failures_per_ip: 20 failed handshakes a minute from one IP key).
	BanIP   bool `koanf:"ban_ip"`
	BanUser bool `koanf:"ban_user"` // default true
}

// Compression is permessage-deflate, off by default. The decompressed size is capped
// at limits.max_message_bytes while inflating.
type Compression struct {
	Enabled               bool `koanf:"enabled"`
	ServerContextTakeover bool `koanf:"server_context_takeover"`
	ClientContextTakeover bool `koanf:"client_context_takeover"`
	ServerMaxWindowBits   int  `koanf:"server_max_window_bits"` // 8..15, default 15
	ClientMaxWindowBits   int  `koanf:"client_max_window_bits"` // 8..15, default 15
	Level                 int  `koanf:"level"`                  // 1..9, default 1
}

// Transport chooses the WebSocket transport's implementation (ADR 0002).
type Transport struct {
	// Reader is "parked" (the default: wsgate's own frame reader over the
	// frame observer, and an idle plain-TCP connection holds no goroutine:
	// it waits in an epoll set and a bounded worker pool reads it when bytes
	// arrive; TLS connections keep a goroutine), "event" (the same reader
	// with a goroutine per connection) or "gws" (gws's read loop, the
	// reader of earlier releases, kept as a fallback). ADR 0002.
	Reader string `koanf:"reader"`
}

// Schemas add or override JSON Schemas (draft 2020-12) per message type.
type Schemas struct {
	// Dir holds <type>.json files.
	Dir string `koanf:"dir"`
	// Inline maps a message type to its schema as JSON text.
	Inline map[string]string `koanf:"inline"`
}

// Channels configures the built-in real-time core.
type Channels struct {
	// DefaultChannel receives chat/data messages that name no channel. Default "chat:lobby".
	DefaultChannel string `koanf:"default_channel"`
	// Claim names the token claim with channel permissions. Default "channels".
	Claim string `koanf:"claim"`
	// MaxPerClient bounds subscriptions per connection. Default 64.
	MaxPerClient int                  `koanf:"max_per_client"`
	Namespaces   map[string]Namespace `koanf:"namespaces"`
	// PublishAPIKeys authenticate POST /v1/publish on the admin listener.
	PublishAPIKeys []string `koanf:"publish_api_keys"`
}

// Namespace sets the defaults of every channel named "<namespace>:…".
type Namespace struct {
	ClientPublish  bool          `koanf:"client_publish"`
	MaxSubscribers int           `koanf:"max_subscribers"`
	HistorySize    int           `koanf:"history_size"`
	HistoryTTL     time.Duration `koanf:"history_ttl"`
	Presence       bool          `koanf:"presence"`
	JoinLeave      bool          `koanf:"join_leave"`
	// Integrity is "off" (default), "hmac" or "pop" for messages into this namespace.
	Integrity string `koanf:"integrity"`
	// SignOutput signs what the server sends in this namespace.
	SignOutput bool `koanf:"sign_output"`
	// Hooks are this namespace's subscribe and publish hooks; they replace the
	// global hooks.subscribe / hooks.publish for its channels (docs/hooks.md).
	Hooks NamespaceHooks `koanf:"hooks"`
	// Limits are per-room limits for this namespace's channels.
	Limits RoomLimits `koanf:"limits"`
	// Encryption is "off" (default), "at_rest" (publications are sealed with
	// encryption.keys before they leave the node: history, Redis, cross-node
	// pub/sub, audit samples hold ciphertext) or "end_to_end" (clients seal with
	// keys wsgate does not hold; wsgate checks only the envelope). See
	// docs/encryption.md.
	Encryption string `koanf:"encryption"`
}

// Encryption holds the master keys of namespaces with encryption: at_rest.
type Encryption struct {
	// Keys are "<id>=<secret>" entries; a secret is "base64:<b64>" or raw text of
	// at least 32 bytes, an id 1-64 of [A-Za-z0-9._-]. The first key seals new
	// publications; every listed key opens. A list of strings so that it can be
	// set from the environment: WSGATE_ENCRYPTION__KEYS="k2=base64:…,k1=base64:…".
	Keys []string `koanf:"keys"`
	// EndToEndKeys are "<id>=<secret>" master keys (same format as Keys, never
	// the same secrets) from which the ticket endpoint derives the keys it hands
	// clients for the end_to_end channels their tokens grant. The first seals,
	// every listed key is delivered. Empty (default): the application gives its
	// clients their keys and wsgate holds none. docs/encryption.md.
	EndToEndKeys []string `koanf:"end_to_end_keys"`
}

// EncryptionKey splits a "<id>=<secret>" entry of encryption.keys.
func EncryptionKey(entry string) (id, secret string, ok bool) {
	id, secret, ok = strings.Cut(entry, "=")
	return id, secret, ok && id != "" && secret != ""
}

// NamespaceHooks are the hooks a namespace may set.
type NamespaceHooks struct {
	Subscribe Hook `koanf:"subscribe"`
	Publish   Hook `koanf:"publish"`
}

// RoomLimits bound what happens inside one channel ("room") of a namespace.
// The rate limits live in the state layer (memory or Redis), so they hold
// across nodes; 0 means unlimited.
type RoomLimits struct {
	// PublishRate is the aggregate publish rate of one channel (all members).
	PublishRate RateLimit `koanf:"publish_rate"`
	// MemberPublishRate is one member's publish rate within one channel.
	MemberPublishRate RateLimit `koanf:"member_publish_rate"`
	// MaxMessageBytes caps one publication's payload in this namespace.
	MaxMessageBytes int `koanf:"max_message_bytes"`
	// Schema names a message type in schemas (inline or dir) whose schema every
	// payload published in this namespace must satisfy.
	Schema string `koanf:"schema"`
	// MaxMembers caps the subscribers of one channel across all nodes (needs
	// presence: it counts the channel's presence entries).
	MaxMembers int `koanf:"max_members"`
}

// Hooks configures application hooks: HTTP endpoints that take part in
// connect, subscribe and publish decisions (docs/hooks.md).
type Hooks struct {
	// SigningKey signs every hook request (identity headers and body, HMAC);
	// "base64:…" or raw, >= 32 bytes. Required when any hook has a url.
	SigningKey string `koanf:"signing_key"`
	Connect    Hook   `koanf:"connect"`
	Subscribe  Hook   `koanf:"subscribe"`
	Publish    Hook   `koanf:"publish"`
}

// Hook is one HTTP hook; an empty URL means no hook.
type Hook struct {
	URL            string        `koanf:"url"`
	Timeout        time.Duration `koanf:"timeout"`         // per call, default 2s
	MaxConcurrency int           `koanf:"max_concurrency"` // calls in flight, default 64; more fail at once
	// FailurePolicy is "fail_closed" (default: refuse when the hook cannot
	// answer) or "fail_open" (a loosening: let requests through unchanged;
	// logged at start).
	FailurePolicy    string      `koanf:"failure_policy"`
	MaxResponseBytes int         `koanf:"max_response_bytes"` // default 65536
	Breaker          HookBreaker `koanf:"breaker"`
}

// HookBreaker is a hook's circuit breaker.
type HookBreaker struct {
	Failures int           `koanf:"failures"` // consecutive failures that open it, default 5
	Cooldown time.Duration `koanf:"cooldown"` // how long it stays open, default 10s
}

// Command forwards `command` messages to an application backend.
type Command struct {
	URL              string        `koanf:"url"`
	Timeout          time.Duration `koanf:"timeout"` // default 5s
	MaxResponseBytes int           `koanf:"max_response_bytes"`
}

// Integrity configures signed messages and replay protection.
type Integrity struct {
	// Mode is the default for the built-in endpoint: "off" (default), "hmac" or "pop".
	Mode string `koanf:"mode"`
	// MasterKeys derive per-user HMAC keys; the first is used to sign new keys.
	MasterKeys []IntegrityKey `koanf:"master_keys"`
	// Window is the accepted clock skew for message timestamps. Default 30s.
	Window time.Duration `koanf:"window"`
	// ReplayCacheSize bounds the nonce cache. Default 1,000,000.
	ReplayCacheSize int `koanf:"replay_cache_size"`
	// ServerSigningKey is an Ed25519 seed ("base64:…"); generated at start when empty.
	ServerSigningKey string `koanf:"server_signing_key"`
}

// IntegrityKey is one HMAC master key with its id.
type IntegrityKey struct {
	ID     string `koanf:"id"`
	Secret string `koanf:"secret"`
}

// Admin is the separate admin listener: metrics, admin API, dashboard, publish API.
type Admin struct {
	// Listen is loopback by default ("127.0.0.1:9090"); "" disables the admin listener.
	Listen string `koanf:"listen"`
	// Token authenticates every admin call (constant-time compare); at least 32 bytes.
	Token string `koanf:"token"`
}

// Audit is the append-only security event log.
type Audit struct {
	Path              string  `koanf:"path"` // "" disables, "-" is stderr
	MaxBytes          int64   `koanf:"max_bytes"`
	MaxFiles          int     `koanf:"max_files"`
	MessageSampleRate float64 `koanf:"message_sample_rate"`
	MessageMaxBytes   int     `koanf:"message_max_bytes"`
	// Chain makes the log tamper-evident (a SHA-256 hash chain over the
	// lines, kept across rotation and restarts); see docs/audit.md.
	Chain bool `koanf:"chain"`
	// CheckpointKeyFile holds the Ed25519 key that signs checkpoints (PEM
	// PKCS #8 or "base64:" seed; `wsgate audit keygen` makes one).
	CheckpointKeyFile string `koanf:"checkpoint_key_file"`
	// CheckpointKey is the same key inline, "base64:<32-byte seed>" — best
	// set via WSGATE_AUDIT__CHECKPOINT_KEY. Redacted from logs.
	CheckpointKey string `koanf:"checkpoint_key"`
	// CheckpointInterval signs the chain head this often when records were
	// written; CheckpointEvery also after this many records.
	CheckpointInterval time.Duration `koanf:"checkpoint_interval"`
	CheckpointEvery    int           `koanf:"checkpoint_every"`
	// ShipWebhook receives every checkpoint as a JSON POST, ShipSyslog as a
	// syslog line ("udp://host:514", "tcp://host:514", "unix:///dev/log"):
	// the chain head kept where the server cannot rewrite it.
	ShipWebhook string `koanf:"ship_webhook"`
	ShipSyslog  string `koanf:"ship_syslog"`
}

// Alerts are anomaly rules over sliding windows.
type Alerts struct {
	Rules   []AlertRule `koanf:"rules"`
	Webhook string      `koanf:"webhook"`
}

// AlertRule fires once when Event happens Threshold times within Window, then waits Cooldown.
type AlertRule struct {
	Name      string        `koanf:"name"`
	Event     string        `koanf:"event"` // auth_failure, handshake, invalid_message, oversize, ban
	Window    time.Duration `koanf:"window"`
	Threshold int           `koanf:"threshold"`
	PerIP     bool          `koanf:"per_ip"`
	Cooldown  time.Duration `koanf:"cooldown"`
	AutoBan   bool          `koanf:"auto_ban"`
	BanTTL    time.Duration `koanf:"ban_ttl"`
}

// Log configures the process log (log/slog).
type Log struct {
	Level  string `koanf:"level"`  // debug, info (default), warn, error
	Format string `koanf:"format"` // json (default) or text
}

// State selects where shared state lives.
type State struct {
	// Backend is "memory" (default) or "redis".
	Backend string `koanf:"backend"`
	Redis   Redis  `koanf:"redis"`
}

// Redis is the connection to the shared store.
type Redis struct {
	// Addrs: one address for a single server, several for Cluster; with MasterName, Sentinel.
	Addrs      []string `koanf:"addrs"`
	MasterName string   `koanf:"master_name"`
	Username   string   `koanf:"username"`
	Password   string   `koanf:"password"`
	DB         int      `koanf:"db"`
	TLS        bool     `koanf:"tls"`
	CAFile     string   `koanf:"ca_file"`
	Prefix     string   `koanf:"prefix"` // key prefix, default "wsgate:"
	// LimitsFailOpen keeps serving with local limits when Redis is down. Default true.
	LimitsFailOpen bool `koanf:"limits_fail_open"`
	// LeaseTTL is how long a node's quota counts and presence entries outlive its
	// last heartbeat (heartbeats every LeaseTTL/3). 0 = 15s. A node paused longer
	// (stopped process, VM freeze) stops counting and others may admit over quota.
	LeaseTTL time.Duration `koanf:"lease_ttl"`
}

// Route maps a path to the built-in core or an upstream WebSocket backend (gateway mode).
type Route struct {
	Path string `koanf:"path"`
	Host string `koanf:"host"`
	// Upstream is a ws:// or wss:// URL; empty means the built-in real-time core.
	Upstream string `koanf:"upstream"`
	// Validation is "json" (full pipeline) or "raw" (size, UTF-8, fragments, rate only).
	Validation     string        `koanf:"validation"`
	ConnectTimeout time.Duration `koanf:"connect_timeout"`
	// IdentityKey signs the identity headers sent upstream (HMAC); "base64:…" or raw, >= 32 bytes.
	IdentityKey    string   `koanf:"identity_key"`
	CAFile         string   `koanf:"ca_file"`
	ClientCertFile string   `koanf:"client_cert_file"`
	ClientKeyFile  string   `koanf:"client_key_file"`
	Subprotocols   []string `koanf:"subprotocols"`
	// Per-route overrides; zero values inherit the top-level setting.
	MaxMessageBytes int      `koanf:"max_message_bytes"`
	AllowBinary     bool     `koanf:"allow_binary"`
	Origins         []string `koanf:"origins"`
	Integrity       string   `koanf:"integrity"`
	// StripParams are extra query parameter names (case-insensitive) never passed
	// to the upstream, beside wsgate's own credentials (token, ticket,
	// access_token, pop_*), which are always stripped.
	StripParams []string `koanf:"strip_params"`
}

// Default returns the secure default configuration. Keys and certificates are not
// defaulted: without them (and without --dev) the server refuses to start.
func Default() *Config {
	return &Config{
		Listen: "127.0.0.1:8443",
		Path:   "/ws",
		TLS:    TLS{MinVersion: "1.2", ClientAuth: "none", IdentityFrom: "san"},
		Timeouts: Timeouts{
			ReadHeader: 5 * time.Second, Handshake: 10 * time.Second, Idle: 5 * time.Minute,
			PingInterval: 25 * time.Second, PongTimeout: 10 * time.Second,
			Write: 10 * time.Second, Drain: 10 * time.Second,
		},
		Auth: Auth{
			Mode: "jwt", JWKSRefresh: 10 * time.Minute, JWKSMinRefresh: 30 * time.Second,
			Leeway: 5 * time.Second, MaxLifetime: 24 * time.Hour, SubjectClaim: "sub", TierClaim: "tier",
			Tickets: Tickets{Enabled: true, TTL: 30 * time.Second, MaxEntries: 100000},
		},
		Origins:   Origins{AllowMissing: true},
		Transport: Transport{Reader: "parked"},
		Limits: Limits{
			MaxHeaderBytes: 8192, MaxMessageBytes: 8192, MaxFragments: 64,
			JSON:          JSONLimits{MaxDepth: 32, MaxKeys: 128, MaxArrayLen: 1024, MaxStringLen: 4096},
			HandshakeRate: RateLimit{Rate: 10, Burst: 20},
			IPv4Prefix:    32, IPv6Prefix: 64,
			Connections: Connections{PerIP: 100, PerUser: 10, Global: 19000, PendingPerIP: 256, PendingTotal: 4096},
			Outbox:      Outbox{MaxMessages: 256, MaxBytes: 1 << 20},
		},
		Rate: Rate{
			Tiers: map[string]Tier{"default": {
				Messages:     RateLimit{Rate: 20, Burst: 40},
				Bytes:        RateLimit{Rate: 64 << 10, Burst: 128 << 10},
				UserMessages: RateLimit{Rate: 50, Burst: 100},
				UserBytes:    RateLimit{Rate: 256 << 10, Burst: 512 << 10},
				IPMessages:   RateLimit{Rate: 200, Burst: 400},
				IPBytes:      RateLimit{Rate: 1 << 20, Burst: 2 << 20},
			}},
			AbuseLimited: 50, AbuseWindow: 10 * time.Second,
		},
		Abuse:       Abuse{Window: time.Minute, MaxStrikes: 10, BanTTL: 10 * time.Minute, BanIP: false, BanUser: true},
		Compression: Compression{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15, Level: 1},
		Channels: Channels{
			DefaultChannel: "chat:lobby", Claim: "channels", MaxPerClient: 64,
			Namespaces: map[string]Namespace{"chat": {
				ClientPublish: true, MaxSubscribers: 10000, HistorySize: 100, HistoryTTL: 10 * time.Minute,
				Presence: true, JoinLeave: true,
			}},
		},
		Command:   Command{Timeout: 5 * time.Second, MaxResponseBytes: 64 << 10},
		Integrity: Integrity{Mode: "off", Window: 30 * time.Second, ReplayCacheSize: 1000000},
		Admin:     Admin{Listen: "127.0.0.1:9090"},
		Audit: Audit{MaxBytes: 100 << 20, MaxFiles: 5, MessageMaxBytes: 256,
			CheckpointInterval: time.Minute, CheckpointEvery: 10000},
		Alerts: Alerts{Rules: []AlertRule{
			// Unauthenticated abuse is what bans an IP (key) by default.
			{Name: "auth_failures_per_ip", Event: "auth_failure", Window: time.Minute, Threshold: 20, PerIP: true, Cooldown: 5 * time.Minute,
				AutoBan: true, BanTTL: 10 * time.Minute},
			{Name: "auth_failures", Event: "auth_failure", Window: time.Minute, Threshold: 200, Cooldown: 5 * time.Minute},
			{Name: "handshake_flood", Event: "handshake", Window: time.Minute, Threshold: 5000, Cooldown: 5 * time.Minute},
			{Name: "invalid_spike", Event: "invalid_message", Window: time.Minute, Threshold: 500, Cooldown: 5 * time.Minute},
			{Name: "oversize_spike", Event: "oversize", Window: time.Minute, Threshold: 100, Cooldown: 5 * time.Minute},
			{Name: "ban_spike", Event: "ban", Window: time.Minute, Threshold: 20, Cooldown: 5 * time.Minute},
		}},
		Log:   Log{Level: "info", Format: "json"},
		State: State{Backend: "memory", Redis: Redis{Prefix: "wsgate:", LimitsFailOpen: true}},
	}
}
