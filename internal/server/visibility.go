package server

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/edge/guard"
	"github.com/wsgate/wsgate/internal/observe/alert"
	"github.com/wsgate/wsgate/internal/observe/audit"
	"github.com/wsgate/wsgate/internal/state/ban"
)

// buildVisibility creates metrics, the audit log and the alert engine.
func (s *Server) buildVisibility(cfg *config.Config) error {
	s.metrics = newMetrics()
	ao := audit.Options{
		Path: cfg.Audit.Path, MaxBytes: cfg.Audit.MaxBytes, MaxFiles: cfg.Audit.MaxFiles,
		MessageSampleRate: cfg.Audit.MessageSampleRate, MessageMaxBytes: cfg.Audit.MessageMaxBytes,
		Chain: cfg.Audit.Chain, CheckpointInterval: cfg.Audit.CheckpointInterval, CheckpointEvery: cfg.Audit.CheckpointEvery,
	}
	if cfg.Audit.CheckpointKey != "" || cfg.Audit.CheckpointKeyFile != "" {
		s.redactor.Add(cfg.Audit.CheckpointKey)
		s.redactor.Add(strings.TrimPrefix(cfg.Audit.CheckpointKey, "base64:"))
		k, err := audit.LoadSigningKey(cfg.Audit.CheckpointKeyFile, cfg.Audit.CheckpointKey)
		if err != nil {
			return fmt.Errorf("audit.checkpoint_key: %w", err)
		}
		ao.CheckpointKey = k
	}
	if cfg.Audit.ShipWebhook != "" || cfg.Audit.ShipSyslog != "" {
		// Made before the logger so it is closed after it (closers run in
		// reverse) and ships the checkpoint written on shutdown.
		sh, err := audit.NewShipper(audit.ShipOptions{Webhook: cfg.Audit.ShipWebhook, Syslog: cfg.Audit.ShipSyslog})
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		s.onClose(func() { _ = sh.Close() })
		ao.OnCheckpoint = sh.Send
	}
	a, err := audit.New(ao, s.redactor)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if ao.Chain {
		keyID := "" // unsigned: a chain without checkpoints
		if ao.CheckpointKey != nil {
			keyID = audit.KeyID(ao.CheckpointKey.Public().(ed25519.PublicKey))
		}
		s.log.Info("audit hash chain on", "path", cfg.Audit.Path, "checkpoint_key_id", keyID,
			"ship_webhook", cfg.Audit.ShipWebhook != "", "ship_syslog", cfg.Audit.ShipSyslog != "")
	}
	s.audit = a
	s.onClose(func() { _ = a.Close() })
	sinks := []alert.Sink{alert.LogSink(s.log), alert.SinkFunc(func(al alert.Alert) {
		s.metrics.Alert(al.Rule)
		s.audit.Log(audit.Event{Event: audit.Alert, IP: al.IP, Reason: al.Rule, Detail: map[string]any{
			"count": al.Count, "threshold": al.Threshold, "window": al.Window.String(), "top_ips": al.TopIPs,
		}})
	})}
	if cfg.Alerts.Webhook != "" {
		wh, err := alert.WebhookSink(cfg.Alerts.Webhook, alert.WebhookOptions{})
		if err != nil {
			return fmt.Errorf("alerts.webhook: %w", err)
		}
		s.onClose(func() { _ = wh.Close() })
		sinks = append(sinks, wh)
	}
	eng, err := alert.New(alert.Options{Rules: alertRules(cfg), OnAlert: s.autoBan}, sinks...)
	if err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	s.alerts = eng
	return nil
}

// autoBan applies a rule's auto_ban to the IPs it names. It runs on the goroutine
// that observed the event, so it only hands the ban to the (fast, local) list.
func (s *Server) autoBan(a alert.Alert) {
	if !a.AutoBan {
		return
	}
	dev := s.config().Dev
	for _, ip := range a.Offenders() {
		if addr := net.ParseIP(ip); dev && addr != nil && addr.IsLoopback() {
			continue // --dev never bans loopback clients
		}
		b := ban.Ban{Subject: ban.IPSubject(ip), Until: time.Now().Add(a.BanTTL), Reason: "alert:" + a.Rule, Created: time.Now()}
		if err := s.bans.Ban(context.Background(), b); err != nil {
			s.log.Warn("auto-ban failed", "ip", ip, "err", err)
			continue
		}
		s.onBan(b)
	}
}

// onBan records a ban placed by strikes or alerts.
func (s *Server) onBan(b ban.Ban) {
	kind := "ip"
	if len(b.Subject) > 5 && b.Subject[:5] == "user:" {
		kind = "user"
	}
	s.metrics.Ban(kind)
	s.alerts.Observe(alert.EventBan, "")
	s.audit.Log(audit.Event{Event: audit.Ban, Reason: b.Reason, Detail: map[string]any{"subject": b.Subject, "until": b.Until}})
	s.log.Warn("banned", "subject", b.Subject, "reason", b.Reason, "until", b.Until)
}

// observeHandshake records one handshake's outcome everywhere.
func (s *Server) observeHandshake(r *http.Request, ip string, rej *guard.Rejection) {
	s.alerts.Observe(alert.EventHandshake, ip)
	if rej == nil {
		s.metrics.Handshake(true, "")
		return
	}
	s.metrics.Handshake(false, rej.Reason)
	if rej.Status == http.StatusUnauthorized {
		s.alerts.Observe(alert.EventAuthFailure, ip)
	}
	if rej.Reason == "handshake_rate" {
		s.metrics.RateLimited("handshake")
	}
	s.audit.Log(audit.Event{Event: audit.HandshakeRejected, IP: ip, Route: r.URL.Path, Reason: rej.Reason, Status: rej.Status})
	s.log.Info("handshake rejected", "ip", ip, "status", rej.Status, "reason", rej.Reason,
		"path", r.URL.Path, "origin", r.Header.Get("Origin"))
}
