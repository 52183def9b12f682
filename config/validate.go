package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/wsgate/wsgate/internal/edge/auth"
)

// Validate checks the whole configuration and returns every problem at once, each
// naming the field and the fix, e.g.
// "limits.max_message_bytes: must be between 64 and 16777216, got 0".
func (c *Config) Validate() error {
	v := &validator{pos: c.pos}
	v.addr("listen", c.Listen)
	if !strings.HasPrefix(c.Path, "/") {
		v.errf("path", "must start with /, got %q", c.Path)
	}
	for i, p := range c.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			v.errf(fmt.Sprintf("trusted_proxies[%d]", i), "must be a CIDR or IP address, got %q", p)
		}
	}
	// TLS
	if !c.InsecurePlaintext && !c.Dev {
		if (c.TLS.CertFile == "" || c.TLS.KeyFile == "") && c.TLS.Certificate == nil {
			v.errf("tls.cert_file", "TLS is on by default: set tls.cert_file and tls.key_file (or insecure_plaintext: true behind a TLS-terminating proxy, or run `wsgate serve --dev`)")
		}
	}
	v.oneOf("tls.min_version", c.TLS.MinVersion, "1.2", "1.3")
	v.oneOf("tls.client_auth", c.TLS.ClientAuth, "none", "verify_if_given", "require")
	v.oneOf("tls.identity_from", c.TLS.IdentityFrom, "san", "cn")
	if c.TLS.ClientAuth != "none" && c.TLS.ClientCAFile == "" {
		v.errf("tls.client_ca_file", "required when tls.client_auth is %q", c.TLS.ClientAuth)
	}
	if c.InsecurePlaintext && c.TLS.ClientAuth != "none" {
		v.errf("tls.client_auth", "mTLS needs TLS: remove insecure_plaintext or set client_auth: none")
	}
	// Timeouts
	t := c.Timeouts
	v.dur("timeouts.read_header", t.ReadHeader, 100*time.Millisecond, time.Minute)
	v.dur("timeouts.handshake", t.Handshake, 100*time.Millisecond, 2*time.Minute)
	v.dur("timeouts.idle", t.Idle, time.Second, 24*time.Hour)
	v.dur("timeouts.ping_interval", t.PingInterval, 100*time.Millisecond, time.Hour)
	v.dur("timeouts.pong_timeout", t.PongTimeout, 100*time.Millisecond, time.Hour)
	v.dur("timeouts.write", t.Write, 100*time.Millisecond, 5*time.Minute)
	v.dur("timeouts.drain", t.Drain, 0, 10*time.Minute)
	// Auth
	a := c.Auth
	v.oneOf("auth.mode", a.Mode, "jwt", "mtls", "jwt_or_mtls", "jwt_and_mtls")
	usesJWT := a.Mode != "mtls"
	if usesJWT && len(a.Keys) == 0 && a.JWKSURL == "" && !c.Dev {
		v.errf("auth.keys", "no JWT key configured: add auth.keys (secret or public key) or auth.jwks_url, or run `wsgate serve --dev` for a development key")
	}
	for i, k := range a.Keys {
		f := fmt.Sprintf("auth.keys[%d]", i)
		v.notPublished(c, f+".secret", k.Secret)
		n := 0
		for _, s := range []string{k.Secret, k.PublicKeyFile, k.PublicKeyPEM} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			v.errf(f, "set exactly one of secret, public_key_file, public_key_pem")
		}
		if len(k.Algorithms) == 0 {
			v.errf(f+".algorithms", "list the allowed algorithms, e.g. [HS256] or [RS256]")
		}
		for _, alg := range k.Algorithms {
			if strings.EqualFold(alg, "none") {
				v.errf(f+".algorithms", "\"none\" is never allowed")
			}
		}
	}
	if a.JWKSURL != "" {
		if u, err := url.Parse(a.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.errf("auth.jwks_url", "must be an http(s) URL, got %q", a.JWKSURL)
		}
	}
	v.dur("auth.leeway", a.Leeway, 0, 5*time.Minute)
	v.dur("auth.max_lifetime", a.MaxLifetime, time.Minute, 30*24*time.Hour)
	if a.SubjectClaim == "" {
		v.errf("auth.subject_claim", "must not be empty (usually \"sub\")")
	}
	if (a.Mode == "mtls" || a.Mode == "jwt_and_mtls" || a.Mode == "jwt_or_mtls") && c.TLS.ClientAuth == "none" {
		v.errf("tls.client_auth", "auth.mode %q needs client certificates: set tls.client_auth and tls.client_ca_file", a.Mode)
	}
	if a.Tickets.Enabled {
		v.dur("auth.tickets.ttl", a.Tickets.TTL, time.Second, 10*time.Minute)
		v.between("auth.tickets.max_entries", a.Tickets.MaxEntries, 1, 100_000_000)
	}
	if a.CookieName != "" && !tokenRE.MatchString(a.CookieName) {
		v.errf("auth.cookie_name", "must be a cookie token, got %q", a.CookieName)
	}
	// Origins
	for i, o := range c.Origins.Allowed {
		if err := checkOriginPattern(o); err != nil {
			v.errf(fmt.Sprintf("origins.allowed[%d]", i), "%v", err)
		}
	}
	// Limits
	l := c.Limits
	v.between("limits.max_header_bytes", l.MaxHeaderBytes, 1024, 1<<20)
	v.between("limits.max_message_bytes", l.MaxMessageBytes, 64, 16<<20)
	v.between("limits.max_fragments", l.MaxFragments, 1, 100000)
	for typ, n := range l.TypeMaxBytes {
		v.between("limits.type_max_bytes."+typ, n, 16, l.MaxMessageBytes)
	}
	v.between("limits.json.max_depth", l.JSON.MaxDepth, 2, 1000)
	v.between("limits.json.max_keys", l.JSON.MaxKeys, 1, 100000)
	v.between("limits.json.max_array_len", l.JSON.MaxArrayLen, 1, 1000000)
	v.between("limits.json.max_string_len", l.JSON.MaxStringLen, 1, 16<<20)
	v.rate("limits.handshake_rate", l.HandshakeRate)
	v.between("limits.ipv4_prefix", l.IPv4Prefix, 8, 32)
	v.between("limits.ipv6_prefix", l.IPv6Prefix, 16, 128)
	v.between("limits.connections.per_ip", l.Connections.PerIP, 0, 1_000_000)
	v.between("limits.connections.per_user", l.Connections.PerUser, 0, 1_000_000)
	v.between("limits.connections.global", l.Connections.Global, 0, 10_000_000)
	v.between("limits.connections.pending_per_ip", l.Connections.PendingPerIP, 0, 1_000_000)
	v.between("limits.connections.pending_total", l.Connections.PendingTotal, 0, 10_000_000)
	v.between("limits.outbox.max_messages", l.Outbox.MaxMessages, 1, 1_000_000)
	v.between("limits.outbox.max_bytes", l.Outbox.MaxBytes, 1024, 1<<30)
	// Rate
	if _, ok := c.Rate.Tiers["default"]; !ok {
		v.errf("rate.tiers", "must contain a \"default\" tier")
	}
	for name, tier := range c.Rate.Tiers {
		f := "rate.tiers." + name
		v.rate(f+".messages", tier.Messages)
		v.rate(f+".bytes", tier.Bytes)
		v.rate(f+".user_messages", tier.UserMessages)
		v.rate(f+".user_bytes", tier.UserBytes)
		v.rate(f+".ip_messages", tier.IPMessages)
		v.rate(f+".ip_bytes", tier.IPBytes)
		for _, b := range []struct {
			f string
			r RateLimit
		}{{".bytes", tier.Bytes}, {".user_bytes", tier.UserBytes}, {".ip_bytes", tier.IPBytes}} {
			if b.r.Rate > 0 && b.r.Burst < l.MaxMessageBytes {
				v.errf(f+b.f+".burst", "must be at least limits.max_message_bytes (%d) or a maximal message could never pass, got %d", l.MaxMessageBytes, b.r.Burst)
			}
		}
	}
	v.between("rate.abuse_limited", c.Rate.AbuseLimited, 0, 1_000_000)
	v.dur("rate.abuse_window", c.Rate.AbuseWindow, time.Second, time.Hour)
	// Abuse
	v.dur("abuse.window", c.Abuse.Window, time.Second, 24*time.Hour)
	v.between("abuse.max_strikes", c.Abuse.MaxStrikes, 0, 1_000_000)
	v.dur("abuse.ban_ttl", c.Abuse.BanTTL, time.Second, 30*24*time.Hour)
	v.oneOf("transport.reader", c.Transport.Reader, "gws", "event", "parked")

	// Compression
	if c.Compression.Enabled {
		v.between("compression.server_max_window_bits", c.Compression.ServerMaxWindowBits, 8, 15)
		v.between("compression.client_max_window_bits", c.Compression.ClientMaxWindowBits, 8, 15)
		v.between("compression.level", c.Compression.Level, 1, 9)
	}
	// Channels
	if dc := c.Channels.DefaultChannel; dc != "" {
		if !channelRE.MatchString(dc) {
			v.errf("channels.default_channel", "must look like ns:name, got %q", dc)
		} else if ns, _, _ := strings.Cut(dc, ":"); !hasNamespace(c.Channels.Namespaces, ns) {
			v.errf("channels.default_channel", "namespace %q of %q is not in channels.namespaces", ns, dc)
		}
	}
	v.between("channels.max_per_client", c.Channels.MaxPerClient, 1, 10000)
	for name, ns := range c.Channels.Namespaces {
		f := "channels.namespaces." + name
		if !nsRE.MatchString(name) {
			v.errf(f, "namespace names use [A-Za-z0-9_.-], got %q", name)
		}
		v.between(f+".max_subscribers", ns.MaxSubscribers, 0, 10_000_000)
		v.between(f+".history_size", ns.HistorySize, 0, 1_000_000)
		if ns.HistorySize >= l.Outbox.MaxMessages {
			// A recovering client receives up to history_size messages at once: they
			// must fit its outbox, or it is closed as a slow consumer.
			v.errf(f+".history_size", "must be below limits.outbox.max_messages (%d) so a recovery fits the outbox, got %d", l.Outbox.MaxMessages, ns.HistorySize)
		}
		v.dur(f+".history_ttl", ns.HistoryTTL, 0, 30*24*time.Hour)
		v.oneOf(f+".integrity", orDefault(ns.Integrity, "off"), "off", "hmac", "pop")
		v.oneOf(f+".encryption", orDefault(ns.Encryption, "off"), "off", "at_rest", "end_to_end")
		if ns.Encryption == "at_rest" && len(c.Encryption.Keys) == 0 && !c.Dev {
			v.errf(f+".encryption", "at_rest needs encryption.keys (at least one \"<id>=<secret>\" of >= 32 bytes)")
		}
		v.hook(f+".hooks.subscribe", ns.Hooks.Subscribe)
		v.hook(f+".hooks.publish", ns.Hooks.Publish)
		lm := ns.Limits
		v.rate(f+".limits.publish_rate", lm.PublishRate)
		v.rate(f+".limits.member_publish_rate", lm.MemberPublishRate)
		v.between(f+".limits.max_message_bytes", lm.MaxMessageBytes, 0, 64<<20)
		v.between(f+".limits.max_members", lm.MaxMembers, 0, 10_000_000)
		if lm.MaxMembers > 0 && !ns.Presence {
			v.errf(f+".limits.max_members", "needs presence: true (members are counted from presence)")
		}
		if lm.Schema != "" && !hasSchema(c.Schemas, lm.Schema) {
			v.errf(f+".limits.schema", "no schema named %q in schemas.inline or schemas.dir", lm.Schema)
		}
		if (ns.Hooks.Subscribe.URL != "" || ns.Hooks.Publish.URL != "") && c.Hooks.SigningKey == "" {
			v.errf("hooks.signing_key", "is required when a hook has a url (%s)", f+".hooks")
		}
	}
	v.hook("hooks.connect", c.Hooks.Connect)
	if h := c.Hooks.Connect; h.URL != "" && h.Timeout >= c.Timeouts.Handshake && c.Timeouts.Handshake > 0 {
		// The connect hook runs inside the handshake.
		v.errf("hooks.connect.timeout", "must be below timeouts.handshake (%v), got %v", c.Timeouts.Handshake, h.Timeout)
	}
	v.hook("hooks.subscribe", c.Hooks.Subscribe)
	v.hook("hooks.publish", c.Hooks.Publish)
	if c.Hooks.Connect.URL != "" || c.Hooks.Subscribe.URL != "" || c.Hooks.Publish.URL != "" {
		if c.Hooks.SigningKey == "" {
			v.errf("hooks.signing_key", "is required when a hook has a url")
		}
	}
	if k := c.Hooks.SigningKey; k != "" {
		// Decoded (base64:…) and checked again when the hooks are built.
		if len(k) < 32 {
			v.errf("hooks.signing_key", "must be at least 32 characters (\"base64:…\" or raw text), got %d", len(k))
		}
	}
	v.encryptionKeys(c)
	for i, k := range c.Channels.PublishAPIKeys {
		if len(k) < 32 {
			v.errf(fmt.Sprintf("channels.publish_api_keys[%d]", i), "must be at least 32 characters, got %d", len(k))
		}
	}
	if c.Command.URL != "" {
		if u, err := url.Parse(c.Command.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.errf("command.url", "must be an http(s) URL, got %q", c.Command.URL)
		}
		v.dur("command.timeout", c.Command.Timeout, 10*time.Millisecond, 5*time.Minute)
	}
	// Integrity
	v.oneOf("integrity.mode", c.Integrity.Mode, "off", "hmac", "pop")
	if c.Integrity.Mode == "hmac" && len(c.Integrity.MasterKeys) == 0 && !c.Dev {
		v.errf("integrity.master_keys", "hmac mode needs at least one master key (id and secret of >= 32 bytes)")
	}
	for i, k := range c.Integrity.MasterKeys {
		v.notPublished(c, fmt.Sprintf("integrity.master_keys[%d].secret", i), k.Secret)
		if k.ID == "" || k.Secret == "" {
			v.errf(fmt.Sprintf("integrity.master_keys[%d]", i), "needs id and secret")
		}
	}
	v.dur("integrity.window", c.Integrity.Window, time.Second, time.Hour)
	v.between("integrity.replay_cache_size", c.Integrity.ReplayCacheSize, 1000, 100_000_000)
	// Admin
	if c.Admin.Listen != "" {
		v.addr("admin.listen", c.Admin.Listen)
		if c.Admin.Token != "" && len(c.Admin.Token) < 32 {
			v.errf("admin.token", "must be at least 32 characters, got %d", len(c.Admin.Token))
		}
	}
	// Audit
	if c.Audit.Path != "" {
		if c.Audit.MaxBytes < 1<<20 {
			v.errf("audit.max_bytes", "must be at least 1048576, got %d", c.Audit.MaxBytes)
		}
		v.between("audit.max_files", c.Audit.MaxFiles, 1, 1000)
	}
	if c.Audit.MessageSampleRate < 0 || c.Audit.MessageSampleRate > 1 {
		v.errf("audit.message_sample_rate", "must be between 0 and 1, got %g", c.Audit.MessageSampleRate)
	}
	if c.Audit.CheckpointKeyFile != "" && c.Audit.CheckpointKey != "" {
		v.errf("audit.checkpoint_key", "set one of checkpoint_key and checkpoint_key_file, not both")
	}
	if (c.Audit.CheckpointKeyFile != "" || c.Audit.CheckpointKey != "") && !c.Audit.Chain {
		v.errf("audit.chain", "checkpoints sign the hash chain: set audit.chain: true, or remove the checkpoint key")
	}
	if (c.Audit.ShipWebhook != "" || c.Audit.ShipSyslog != "") && c.Audit.CheckpointKeyFile == "" && c.Audit.CheckpointKey == "" {
		v.errf("audit.ship_webhook", "shipping sends signed checkpoints: set audit.checkpoint_key_file (or checkpoint_key) and audit.chain: true")
	}
	if c.Audit.Chain {
		v.dur("audit.checkpoint_interval", c.Audit.CheckpointInterval, time.Second, 24*time.Hour)
		v.between("audit.checkpoint_every", c.Audit.CheckpointEvery, 1, 1_000_000_000)
	}
	// Alerts
	for i, r := range c.Alerts.Rules {
		f := fmt.Sprintf("alerts.rules[%d]", i)
		if r.Name == "" {
			v.errf(f+".name", "must not be empty")
		}
		v.oneOf(f+".event", r.Event, "auth_failure", "handshake", "invalid_message", "oversize", "ban")
		v.between(f+".threshold", r.Threshold, 1, 100_000_000)
		v.dur(f+".window", r.Window, time.Second, 24*time.Hour)
	}
	if c.Alerts.Webhook != "" {
		if u, err := url.Parse(c.Alerts.Webhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			v.errf("alerts.webhook", "must be an http(s) URL, got %q", c.Alerts.Webhook)
		}
	}
	// Log, state
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "json", "text")
	v.oneOf("state.backend", c.State.Backend, "memory", "redis")
	if c.State.Backend == "redis" && len(c.State.Redis.Addrs) == 0 {
		v.errf("state.redis.addrs", "state.backend is redis: list at least one address (host:port)")
	}
	if c.State.Redis.LeaseTTL != 0 {
		v.dur("state.redis.lease_ttl", c.State.Redis.LeaseTTL, 300*time.Millisecond, time.Hour)
	}
	// Routes
	seen := map[string]bool{c.Path: true}
	for i, r := range c.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		if !strings.HasPrefix(r.Path, "/") {
			v.errf(f+".path", "must start with /, got %q", r.Path)
		}
		if seen[r.Host+r.Path] {
			v.errf(f+".path", "duplicate route %q", r.Host+r.Path)
		}
		seen[r.Host+r.Path] = true
		if r.Upstream != "" {
			if u, err := url.Parse(r.Upstream); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
				v.errf(f+".upstream", "must be a ws:// or wss:// URL, got %q", r.Upstream)
			}
		}
		v.oneOf(f+".validation", orDefault(r.Validation, "json"), "json", "raw")
		v.oneOf(f+".integrity", orDefault(r.Integrity, "off"), "off", "hmac", "pop")
		if r.MaxMessageBytes != 0 {
			v.between(f+".max_message_bytes", r.MaxMessageBytes, 64, 16<<20)
		}
		for j, o := range r.Origins {
			if err := checkOriginPattern(o); err != nil {
				v.errf(fmt.Sprintf("%s.origins[%d]", f, j), "%v", err)
			}
		}
		if r.ConnectTimeout != 0 {
			v.dur(f+".connect_timeout", r.ConnectTimeout, 10*time.Millisecond, time.Minute)
		}
		for j, p := range r.StripParams {
			if !tokenRE.MatchString(p) {
				v.errf(fmt.Sprintf("%s.strip_params[%d]", f, j), "must be a query parameter name (1-128 token characters), got %q", p)
			}
		}
	}
	return v.err()
}

var (
	tokenRE   = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]{1,128}$`)
	nsRE      = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	channelRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}:[A-Za-z0-9_\-.@/=+]{1,128}$`)
)

func hasNamespace(m map[string]Namespace, ns string) bool {
	_, ok := m[ns]
	return ok
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// parsePrefix accepts "10.0.0.0/8" and a bare address.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// ParseTrustedProxies returns the trusted proxy prefixes; Validate has checked them.
func (c *Config) ParseTrustedProxies() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(c.TrustedProxies))
	for _, s := range c.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func checkOriginPattern(o string) error {
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("must be an origin like https://app.example.com or https://*.example.com, got %q", o)
	}
	if strings.Contains(u.Host, "*") && !strings.HasPrefix(u.Host, "*.") {
		return fmt.Errorf("a wildcard may only be the first label (https://*.example.com), got %q", o)
	}
	if strings.Count(u.Host, "*") > 1 {
		return fmt.Errorf("only one wildcard allowed, got %q", o)
	}
	return nil
}

type validator struct {
	errs []error
	pos  positions // where keys were set, to prefix messages with file:line:column
}

func (v *validator) errf(field, format string, args ...any) {
	if at, ok := v.pos[field]; ok {
		v.errs = append(v.errs, fmt.Errorf("%s: %s: %s", at, field, fmt.Sprintf(format, args...)))
		return
	}
	v.errs = append(v.errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return &ValidationError{Errs: v.errs}
}

// PublishedSecrets are secrets printed in wsgate's own documentation and
// examples: anyone can mint tokens with them, so only --dev accepts them.
var PublishedSecrets = []string{
	"base64:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0", // examples/wsgate.yaml
}

var keyIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// encryptionKeys checks encryption.keys and encryption.end_to_end_keys: shape,
// ids, unique ids, secret length, and no secret in both lists (at_rest keys
// never leave the server; keys derived from end_to_end ones go to clients).
func (v *validator) encryptionKeys(c *Config) {
	v.encryptionKeyList(c, "encryption.keys", c.Encryption.Keys)
	v.encryptionKeyList(c, "encryption.end_to_end_keys", c.Encryption.EndToEndKeys)
	atRest := map[string]bool{}
	for _, k := range c.Encryption.Keys {
		if _, secret, ok := EncryptionKey(k); ok {
			atRest[secret] = true
		}
	}
	for i, k := range c.Encryption.EndToEndKeys {
		if _, secret, ok := EncryptionKey(k); ok && atRest[secret] {
			v.errf(fmt.Sprintf("encryption.end_to_end_keys[%d]", i), "reuses a secret of encryption.keys: give end_to_end its own keys")
		}
	}
}

func (v *validator) encryptionKeyList(c *Config, field string, entries []string) {
	seen := map[string]bool{}
	for i, k := range entries {
		f := fmt.Sprintf("%s[%d]", field, i)
		id, secret, ok := EncryptionKey(k)
		if !ok {
			// Never echo the entry: it holds a secret.
			v.errf(f, "must be \"<id>=<secret>\", e.g. k1=base64:… (the secret is not shown)")
			continue
		}
		if !keyIDRE.MatchString(id) {
			v.errf(f, "key id must be 1-64 of [A-Za-z0-9._-], got %q", id)
		}
		if seen[id] {
			v.errf(f, "key id %q is listed twice", id)
		}
		seen[id] = true
		v.notPublished(c, f, secret)
		if _, err := auth.ParseSecret(secret); err != nil {
			v.errf(f, "secret: %v", err)
		}
	}
}

func (v *validator) notPublished(c *Config, field, secret string) {
	if c.Dev || secret == "" {
		return
	}
	for _, p := range PublishedSecrets {
		if secret == p {
			v.errf(field, "this is the example secret published with wsgate: anyone can mint tokens with it; "+
				"generate one (`wsgate config example` writes a fresh one, or: echo \"base64:$(head -c 32 /dev/urandom | base64)\")")
		}
	}
}

func (v *validator) between(field string, n, lo, hi int) {
	if n < lo || n > hi {
		v.errf(field, "must be between %d and %d, got %d", lo, hi, n)
	}
}

func (v *validator) dur(field string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		v.errf(field, "must be between %s and %s, got %s", lo, hi, d)
	}
}

func (v *validator) oneOf(field, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.errf(field, "must be one of %s, got %q", strings.Join(allowed, ", "), s)
}

// hook checks one hook's settings (an empty url means no hook).
func (v *validator) hook(field string, h Hook) {
	if h.URL == "" {
		return
	}
	if u, err := url.Parse(h.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errf(field+".url", "must be an http(s) URL, got %q", h.URL)
	}
	v.dur(field+".timeout", h.Timeout, 0, time.Minute)
	v.between(field+".max_concurrency", h.MaxConcurrency, 0, 100_000)
	v.between(field+".max_response_bytes", h.MaxResponseBytes, 0, 16<<20)
	v.oneOf(field+".failure_policy", orDefault(h.FailurePolicy, "fail_closed"), "fail_closed", "fail_open")
	v.between(field+".breaker.failures", h.Breaker.Failures, 0, 1_000_000)
	v.dur(field+".breaker.cooldown", h.Breaker.Cooldown, 0, time.Hour)
}

// hasSchema reports whether typ may have a schema: inline, or anywhere when a
// schema directory is configured (checked for real when the registry loads).
func hasSchema(s Schemas, typ string) bool {
	_, ok := s.Inline[typ]
	return ok || s.Dir != ""
}

func (v *validator) rate(field string, r RateLimit) {
	if r.Rate < 0 {
		v.errf(field+".rate", "must be >= 0, got %g", r.Rate)
	}
	if r.Rate > 0 && r.Burst < 1 {
		v.errf(field+".burst", "must be >= 1 when rate is set, got %d", r.Burst)
	}
}

func (v *validator) addr(field, s string) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		v.errf(field, "must be host:port (e.g. 127.0.0.1:8443), got %q", s)
		return
	}
	_ = host
	if port == "" {
		v.errf(field, "needs a port, got %q", s)
	}
}

// ValidationError lists every problem found in a configuration.
type ValidationError struct{ Errs []error }

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration:")
	for _, err := range e.Errs {
		b.WriteString("\n  ")
		b.WriteString(err.Error())
	}
	return b.String()
}

// Unwrap lets errors.Is/As see each problem.
func (e *ValidationError) Unwrap() []error { return e.Errs }
