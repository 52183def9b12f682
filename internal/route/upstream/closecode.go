package upstream

import (
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/transport"
)

// Close reasons wsgate adds in gateway mode, from protocol's table.
var (
	// ReasonUpstreamGone is the static reason for 1011 after an upstream failure.
	ReasonUpstreamGone = protocol.ReasonUpstreamGone.Text()
	// ReasonUpstreamRestart is the reason for 1012 when the upstream went away.
	ReasonUpstreamRestart = protocol.ReasonUpstreamRestart.Text()
)

// ClientCloseCode maps how the upstream leg ended to the close the client gets.
// byUs is true when wsgate ended the leg itself (the upstream broke a limit or
// stopped answering pings).
//
//	upstream 1000, 3000-4999       → same code and reason (the application's own)
//	upstream 1001, 1012            → 1012 "upstream restarting" (reconnect with backoff)
//	upstream 1013                  → 1013 (try again later), reason kept
//	anything else, no close frame,
//	or a limit the upstream broke  → 1011 "upstream unavailable"
func ClientCloseCode(code uint16, reason string, byUs bool) (uint16, string) {
	if byUs {
		return transport.StatusInternalError, ReasonUpstreamGone
	}
	switch {
	case code == transport.StatusNormal, code >= 3000 && code <= 4999:
		return code, reason
	case code == transport.StatusGoingAway, code == transport.StatusServiceRestart:
		return transport.StatusServiceRestart, ReasonUpstreamRestart
	case code == transport.StatusTryAgainLater:
		return code, reason
	default:
		return transport.StatusInternalError, ReasonUpstreamGone
	}
}

// UpstreamCloseCode maps how the client's session ended to the close the
// upstream gets: the same code and reason when a close frame may carry it;
// 1005 (no status) becomes 1000 and 1006 (the client vanished) or any other
// unsendable code becomes 1001 "client gone".
func UpstreamCloseCode(code uint16, reason string) (uint16, string) {
	switch {
	case code == transport.StatusNoStatus:
		return transport.StatusNormal, ""
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return code, reason
	default:
		return transport.StatusGoingAway, "client gone"
	}
}
