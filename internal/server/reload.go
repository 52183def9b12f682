package server

import (
	"fmt"

	"github.com/wsgate/wsgate/internal/alert"
	"github.com/wsgate/wsgate/internal/audit"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/pipeline"
	"github.com/wsgate/wsgate/internal/transport"
)

// Reload applies a new configuration without dropping connections: limits,
// origins, keys/JWKS, schemas, tiers, strike policy and quotas change for what
// happens next. Listener addresses, TLS files and the state backend need a restart;
// a change to them is refused. An invalid configuration is refused whole and the
// running one stays in force.
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

func (s *Server) reload(cfg *config.Config) (err error) {
	old := s.cfg.Load()
	cfg.Dev = old.Dev
	// A certificate given in memory (dev mode, tests, embedding) cannot come from a
	// file: keep it when the file names none.
	if cfg.TLS.CertFile == "" && cfg.TLS.Certificate == nil {
		cfg.TLS.Certificate = old.TLS.Certificate
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	rules := alertRules(cfg)
	if err := alert.ValidateRules(rules); err != nil {
		return fmt.Errorf("reload: alerts: %w", err)
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
	// Hooks and per-room limits are built once (hooks.go): refusing a change
	// beats silently keeping the old hooks in force.
	if !hooksEqual(cfg, old) {
		return fmt.Errorf("reload: hooks and channels.namespaces.*.hooks/limits need a restart")
	}
	popts, err := pipelineOptions(cfg, s.limiter)
	if err != nil {
		return err
	}
	// A dev server's generated master key stays; configured keys are reloaded.
	reloadKeys := len(cfg.Integrity.MasterKeys) > 0 || !cfg.Dev
	ring, err := keyRing(cfg)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	popts.Verifier = integrityVerifier{s.integ.verifier}
	p, err := pipeline.New(popts)
	if err != nil {
		return fmt.Errorf("reload: pipeline: %w", err)
	}
	to := transportOptions(cfg)
	up, err := transport.NewUpgrader(&to)
	if err != nil {
		return fmt.Errorf("reload: transport: %w", err)
	}
	ver, err := s.newVerifier(cfg)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	// Until the verifier is handed to the guard it is ours: a refusal below must
	// close it, or its JWKS refresher would outlive the reload.
	installed := false
	defer func() {
		if !installed {
			ver.Close()
		}
	}()
	encPolicy, err := encryptionPolicy(cfg, s.enc.Policy())
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	s.pinSecrets(cfg)
	// Everything is built: swap. The namespaces go first because their check
	// (the default channel must stay in one) is the last one that can refuse.
	// The encryption policy goes before them: a namespace that becomes at_rest
	// must not take one publication in plaintext.
	oldEnc := s.enc.Policy()
	s.enc.SetPolicy(encPolicy)
	if err := s.room.SetNamespaces(roomNamespaces(cfg)); err != nil {
		s.enc.SetPolicy(oldEnc)
		return fmt.Errorf("reload: channels: %w", err)
	}
	s.logEncryption(encPolicy)
	if err := s.alerts.SetRules(rules); err != nil {
		return fmt.Errorf("reload: alerts: %w", err)
	}
	oldVer := s.guard.Verifier()
	s.guard.SetVerifier(ver)
	installed = true
	oldVer.Close()
	s.guard.SetPolicy(guardPolicy(cfg))
	s.quotas.SetLimits(quotaLimits(cfg))
	s.strikes.SetPolicy(strikePolicy(cfg))
	s.pipeline.Store(p)
	if reloadKeys {
		s.integ.verifier.SetKeyRing(ring)
		s.integ.keys.Store(ring)
	}
	s.upgrader.Store(up)
	so := sessionOptions(cfg)
	s.sopts.Store(&so)
	if s.logLevel != nil && cfg.Log.Level != old.Log.Level {
		s.logLevel.Set(logLevel(cfg.Log.Level))
		s.log.Warn("log level changed", "from", old.Log.Level, "to", cfg.Log.Level)
	}
	s.cfg.Store(cfg)
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
		_, err = PrepareDevReload(cfg, dev)
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

// PrepareDevReload re-applies the dev key material of a running dev server.
func PrepareDevReload(cfg *config.Config, info *DevInfo) (*config.Config, error) {
	cfg.Dev = true
	cfg.Auth.Keys = append([]config.Key{{ID: "dev", Algorithms: []string{"HS256"}, Secret: info.Secret}}, cfg.Auth.Keys...)
	if cfg.Admin.Token == "" {
		cfg.Admin.Token = info.AdminToken
	}
	cfg.Channels.PublishAPIKeys = append(cfg.Channels.PublishAPIKeys, info.PublishKey)
	addDevGame(cfg)
	return cfg, nil
}
