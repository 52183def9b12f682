package server

import (
	"fmt"

	"github.com/wsgate/wsgate/internal/observe/audit"

	"github.com/wsgate/wsgate/config"
)

// Reload applies a new configuration without dropping connections: limits,
// origins, keys/JWKS, schemas, tiers, strike policy, quotas, gateway routes,
// hooks and per-room limits change for what happens next; connections already
// open keep their route. Listener addresses, TLS files and the state backend
// need a restart; a change to them is refused. An invalid configuration is
// refused whole and the running one stays in force.
//
// Reloads are serialized: a second Reload waits for the first to finish, so the
// running configuration is always one that was loaded whole.
func (s *Server) Reload(cfg *config.Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	err := s.reload(cfg)
	if err != nil {
		s.audit.Log(audit.Event{Event: audit.ConfigRejected, Reason: "invalid", Detail: map[string]any{"error": err.Error()}})
		return err
	}
	s.audit.Log(audit.Event{Event: audit.ConfigReloaded})
	return nil
}

func (s *Server) reload(cfg *config.Config) error {
	prev := s.rt.Load()
	old := prev.cfg
	cfg.Dev = old.Dev
	// A certificate given in memory (dev mode, tests, embedding) cannot come from a
	// file: keep it when the file names none.
	if cfg.TLS.CertFile == "" && cfg.TLS.Certificate == nil {
		cfg.TLS.Certificate = old.TLS.Certificate
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	// Addresses may have come from flags; they are not reloadable anyway.
	cfg.Listen, cfg.Admin.Listen = old.Listen, old.Admin.Listen
	// log.level applies live to the logger New built; log.format, or any log
	// change when the embedding program owns the logger, is refused rather than
	// silently ignored.
	if cfg.Log.Format != old.Log.Format {
		return fmt.Errorf("reload: log.format (%q → %q) needs a restart", old.Log.Format, cfg.Log.Format)
	}
	if cfg.Log.Level != old.Log.Level && s.logLevel == nil {
		return fmt.Errorf("reload: log.level: the program embedding wsgate owns the logger (WithLogger); change its level there")
	}
	if cfg.Path != old.Path ||
		cfg.TLS != old.TLS || cfg.InsecurePlaintext != old.InsecurePlaintext || cfg.State.Backend != old.State.Backend {
		return fmt.Errorf("reload: path, tls, insecure_plaintext and state.backend need a restart")
	}
	// Live leases, pending sockets and counters are keyed by the prefixes in
	// force; changing them live would split one client's counts in two.
	if ipPrefixes(cfg) != ipPrefixes(old) {
		return fmt.Errorf("reload: limits.ipv4_prefix and limits.ipv6_prefix need a restart")
	}
	// Everything derived from the file is built before anything changes; a
	// refusal leaves the running configuration whole.
	rt, err := s.compile(cfg, prev)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	s.pinSecrets(cfg)
	if err := s.install(rt); err != nil {
		rt.closeExcept(prev)
		return fmt.Errorf("reload: %w", err)
	}
	// Handshakes already past the old runtime's guard finish with it, and so
	// do hook calls already under way; new ones reach the new one. Left to
	// release: the old verifier's refresher and the HTTP hooks the new runtime
	// did not reuse (a call still in flight on one finishes, then its
	// connection is dropped: hook.HTTP.Close).
	prev.closeExcept(rt)
	s.logHookChanges(old, cfg)
	if s.logLevel != nil && cfg.Log.Level != old.Log.Level {
		s.logLevel.Set(logLevel(cfg.Log.Level))
		s.log.Warn("log level changed", "from", old.Log.Level, "to", cfg.Log.Level)
	}
	s.log.Info("configuration reloaded")
	return nil
}

// ReloadFile loads path (plus environ) and applies it with Reload, logging the
// outcome; a dev server's key material (WithDev) is carried over.
func (s *Server) ReloadFile(path string, environ []string) {
	dev := s.dev
	cfg, err := config.Load(path, environ)
	if err == nil && s.override != nil {
		s.override(cfg)
	}
	if err == nil && dev != nil {
		_, err = prepareDevReload(cfg, dev)
	}
	if err == nil {
		err = s.Reload(cfg)
	} else {
		s.audit.Log(audit.Event{Event: audit.ConfigRejected, Reason: "unreadable", Detail: map[string]any{"error": err.Error()}})
	}
	if err != nil {
		s.log.Error("configuration reload refused; the running configuration stays in force", "err", err)
	}
}

// prepareDevReload re-applies the dev key material of a running dev server.
func prepareDevReload(cfg *config.Config, info *DevInfo) (*config.Config, error) {
	cfg.Dev = true
	cfg.Auth.Keys = append([]config.Key{{ID: "dev", Algorithms: []string{"HS256"}, Secret: info.Secret}}, cfg.Auth.Keys...)
	if cfg.Admin.Token == "" {
		cfg.Admin.Token = info.AdminToken
	}
	cfg.Channels.PublishAPIKeys = append(cfg.Channels.PublishAPIKeys, info.PublishKey)
	addDevGame(cfg)
	return cfg, nil
}
