package protocol

// CloseCode is a WebSocket close status (RFC 6455 section 7.4).
type CloseCode uint16

// RFC 6455 close codes.
const (
	CloseNormal          CloseCode = 1000
	CloseGoingAway       CloseCode = 1001
	CloseProtocolError   CloseCode = 1002
	CloseUnsupportedData CloseCode = 1003
	CloseNoStatus        CloseCode = 1005 // never sent: the peer's close had no code
	CloseAbnormal        CloseCode = 1006 // never sent: the connection ended without a close
	CloseInvalidPayload  CloseCode = 1007
	ClosePolicyViolation CloseCode = 1008
	CloseMessageTooBig   CloseCode = 1009
	CloseInternalError   CloseCode = 1011
	CloseServiceRestart  CloseCode = 1012
	CloseTryAgainLater   CloseCode = 1013
)

// wsgate's own codes (4000-4999 is the application range); docs/protocol.md says
// when a client should reconnect after each.
const (
	CloseTokenExpired CloseCode = 4001 // reconnect with a new token
	CloseIdle         CloseCode = 4002 // reconnect when needed
	CloseKeepalive    CloseCode = 4003 // reconnect
	CloseHookRefused  CloseCode = 4403 // the connect hook refused; do not retry as is
)

// CloseReason is why wsgate ends a connection. Every reason maps to one code and one
// static text in one table (Code, Text); details go to the audit log, never to the
// peer. The zero value means "no wsgate reason" (the peer closed, or a code was
// propagated from a gateway upstream).
type CloseReason int

// Close reasons.
const (
	ReasonShutdown        CloseReason = iota + 1 // 1001: server going away
	ReasonTokenExpired                           // 4001: exp reached without refresh
	ReasonIdle                                   // 4002: no message within timeouts.idle
	ReasonKeepalive                              // 4003: no pong within timeouts.pong_timeout
	ReasonSlowConsumer                           // 1008: outbound queue full
	ReasonBanned                                 // 1008: strikes reached the ban threshold
	ReasonRateLimit                              // 1008: sustained rate-limit violations
	ReasonKicked                                 // 1008: an operator kicked the connection
	ReasonPolicy                                 // 1008: any other policy violation
	ReasonTooBig                                 // 1009: a message over the size limit
	ReasonInternal                               // 1011: a server error
	ReasonUpstreamGone                           // 1011: gateway upstream failed
	ReasonUpstreamRestart                        // 1012: gateway upstream went away (restarting)
	ReasonHookRefused                            // 4403: the connect hook refused (its own text replaces this one)
	ReasonTryAgainLater                          // 1013: a dependency (hook, limiter) could not answer
	numReasons
)

// closeTable is the one mapping reason → (code, text). docs/protocol.md's close-code
// table is checked against it (TestDocsMatchCloseTable).
var closeTable = [numReasons]struct {
	code CloseCode
	text string
}{
	ReasonShutdown:        {CloseGoingAway, "server shutting down"},
	ReasonTokenExpired:    {CloseTokenExpired, "token expired"},
	ReasonIdle:            {CloseIdle, "idle timeout"},
	ReasonKeepalive:       {CloseKeepalive, "keepalive timeout"},
	ReasonSlowConsumer:    {ClosePolicyViolation, "slow consumer"},
	ReasonBanned:          {ClosePolicyViolation, "banned"},
	ReasonRateLimit:       {ClosePolicyViolation, "rate limit exceeded"},
	ReasonKicked:          {ClosePolicyViolation, "kicked"},
	ReasonPolicy:          {ClosePolicyViolation, "policy violation"},
	ReasonTooBig:          {CloseMessageTooBig, "message too big"},
	ReasonInternal:        {CloseInternalError, "internal error"},
	ReasonUpstreamGone:    {CloseInternalError, "upstream unavailable"},
	ReasonUpstreamRestart: {CloseServiceRestart, "upstream restarting"},
	ReasonHookRefused:     {CloseHookRefused, "refused"},
	ReasonTryAgainLater:   {CloseTryAgainLater, "try again later"},
}

// Code is the close code sent for r; unknown reasons are internal errors.
func (r CloseReason) Code() CloseCode {
	if r <= 0 || r >= numReasons {
		return CloseInternalError
	}
	return closeTable[r].code
}

// Text is the static reason text sent in the close frame for r.
func (r CloseReason) Text() string {
	if r <= 0 || r >= numReasons {
		return "internal error"
	}
	return closeTable[r].text
}

func (r CloseReason) String() string { return r.Text() }
