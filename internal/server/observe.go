package server

import (
	"slices"
	"time"

	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/session"
	"github.com/wsgate/wsgate/internal/observe/alert"
	"github.com/wsgate/wsgate/internal/observe/audit"
	"github.com/wsgate/wsgate/internal/observe/metrics"
)

func newMetrics() *metrics.Metrics {
	m := metrics.New()
	m.SetKnownTypes(append(slices.Clone(protocol.ClientTypes), protocol.TypeRaw))
	return m
}

// observer turns session events into logs, metrics, audit events and alert input.
type observer Server

func (o *observer) Message(s *session.Session, typ string, data []byte, rej *protocol.Error, took time.Duration) {
	m := o.metrics
	if typ == "" {
		typ = "unknown"
	}
	if rej == nil {
		// The connection id picks the stripe of the per-message series: one
		// connection's messages never contend with another core's.
		m.ClientMessage(s.ID(), typ, "accepted", len(data), took)
		o.auditMessage(s, typ, data)
		return
	}
	m.ClientMessage(s.ID(), typ, rej.Code, len(data), took)
	ip := s.IPKey() // per-IP alerts and their auto-bans count the client's key
	switch rej.Code {
	case protocol.CodeRateLimited:
		m.RateLimited("conn")
	case protocol.CodeTooLarge:
		o.alerts.Observe(alert.EventOversize, ip)
	default:
		o.alerts.Observe(alert.EventInvalidMessage, ip)
	}
	closeCode := 0 // reply only
	if rej.Close != 0 {
		closeCode = int(rej.Close.Code())
	}
	o.audit.Log(audit.Event{Event: audit.Violation, ConnID: s.ID(), IP: ip, User: s.User(), Route: s.Route(),
		Reason: rej.Code, Code: closeCode, Detail: map[string]any{"type": typ, "path": rej.Path}})
	o.log.Debug("message rejected", "conn_id", s.ID(), "user", s.User(), "type", typ, "code", rej.Code, "path", rej.Path)
}

func (o *observer) Sent(s *session.Session, size int) { o.metrics.SentTo(s.ID(), size) }

func (o *observer) Strike(s *session.Session, reason string, banned bool) {
	o.metrics.Strike(reason)
	o.audit.Log(audit.Event{Event: audit.Strike, ConnID: s.ID(), IP: s.IP().String(), User: s.User(), Reason: reason,
		Detail: map[string]any{"banned": banned}})
	o.log.Info("strike", "conn_id", s.ID(), "ip", s.IP().String(), "user", s.User(), "reason", reason, "banned", banned)
}

func (o *observer) Closed(s *session.Session, code uint16, reason string) {
	st := s.Stats()
	o.metrics.ConnClosed(s.Route(), int(code))
	switch {
	case s.CloseReason() == protocol.ReasonSlowConsumer:
		o.metrics.SlowConsumerClose()
	case protocol.CloseCode(code) == protocol.CloseMessageTooBig:
		o.alerts.Observe(alert.EventOversize, s.IPKey())
	}
	dur := time.Since(s.Started()).Round(time.Millisecond)
	o.audit.Log(audit.Event{Event: audit.ConnectionClosed, ConnID: s.ID(), IP: s.IP().String(), User: s.User(), Route: s.Route(),
		Code: int(code), Reason: reason, Detail: map[string]any{"duration_ms": dur.Milliseconds(),
			"messages_in": st.MessagesIn, "bytes_in": st.BytesIn, "messages_out": st.MessagesOut, "bytes_out": st.BytesOut}})
	o.log.Info("disconnected", "conn_id", s.ID(), "ip", s.IP().String(), "user", s.User(), "route", s.Route(),
		"duration", dur.String(), "code", code, "close_reason", reason,
		"messages_in", st.MessagesIn, "bytes_in", st.BytesIn, "messages_out", st.MessagesOut, "bytes_out", st.BytesOut)
}
