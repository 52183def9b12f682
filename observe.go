package wsgate

import (
	"time"

	"github.com/wsgate/wsgate/internal/pipeline"
	"github.com/wsgate/wsgate/internal/session"
)

// observer turns session events into logs, metrics, audit events and alert input.
type observer Server

func (o *observer) Message(s *session.Session, typ string, size int, rej *pipeline.Reject, took time.Duration) {
	if rej != nil {
		o.log.Debug("message rejected", "conn_id", s.ID(), "user", s.User(), "type", typ, "code", rej.Code, "path", rej.Path)
	}
}

func (o *observer) Sent(*session.Session, int) {}

func (o *observer) Strike(s *session.Session, reason string, banned bool) {
	o.log.Info("strike", "conn_id", s.ID(), "ip", s.IP().String(), "user", s.User(), "reason", reason, "banned", banned)
}

func (o *observer) Closed(s *session.Session, code uint16, reason string) {
	st := s.Stats()
	o.log.Info("disconnected", "conn_id", s.ID(), "ip", s.IP().String(), "user", s.User(), "route", s.Route(),
		"duration", time.Since(s.Started()).Round(time.Millisecond).String(), "code", code, "close_reason", reason,
		"messages_in", st.MessagesIn, "bytes_in", st.BytesIn, "messages_out", st.MessagesOut, "bytes_out", st.BytesOut)
}
