package session

import "github.com/wsgate/wsgate/internal/transport"

// CloseReason is why wsgate ends a connection. Every reason maps to one close code in
// one place (Code), so the documented table in docs/protocol.md stays true.
type CloseReason int

// Close reasons. Codes 4000-4999 are wsgate's own; clients should reconnect only
// where docs/protocol.md says so.
const (
	CloseShutdown     CloseReason = iota + 1 // 1001: server going away; reconnect with backoff
	CloseTokenExpired                        // 4001: refresh earlier or reconnect with a new token
	CloseIdle                                // 4002: no message within timeouts.idle
	CloseKeepalive                           // 4003: no pong within timeouts.pong_timeout
	CloseSlowConsumer                        // 1008: outbound queue full
	CloseBanned                              // 1008: strikes reached the ban threshold
	CloseRateAbuse                           // 1008: sustained rate-limit violations
	CloseKicked                              // 1008: an operator kicked the connection
	ClosePolicy                              // 1008: any other policy violation
	CloseInternal                            // 1011: a server error
	CloseUpstreamGone                        // 1011 / 1012: gateway upstream ended
)

// Code and short reason text sent in the close frame. Reasons are static: details
// go to the audit log, never to the peer.
func (r CloseReason) Code() (uint16, string) {
	switch r {
	case CloseShutdown:
		return transport.StatusGoingAway, "server shutting down"
	case CloseTokenExpired:
		return 4001, "token expired"
	case CloseIdle:
		return 4002, "idle timeout"
	case CloseKeepalive:
		return 4003, "keepalive timeout"
	case CloseSlowConsumer:
		return transport.StatusPolicyViolation, "slow consumer"
	case CloseBanned:
		return transport.StatusPolicyViolation, "banned"
	case CloseRateAbuse:
		return transport.StatusPolicyViolation, "rate limit exceeded"
	case CloseKicked:
		return transport.StatusPolicyViolation, "kicked"
	case ClosePolicy:
		return transport.StatusPolicyViolation, "policy violation"
	case CloseUpstreamGone:
		return transport.StatusInternalError, "upstream unavailable"
	default:
		return transport.StatusInternalError, "internal error"
	}
}

func (r CloseReason) String() string {
	_, s := r.Code()
	return s
}
