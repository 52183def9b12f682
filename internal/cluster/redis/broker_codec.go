package redis

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/internal/broker"
)

// Event kinds on a channel's pub/sub topic.
const (
	evPublication = 'p'
	evJoin        = 'j'
	evLeave       = 'l'
)

var errBadEvent = errors.New("redis broker: malformed event")

// event is one decoded pub/sub message.
type event struct {
	kind byte
	pub  broker.Publication
	info broker.ClientInfo
}

// decodeEvent parses what the scripts in broker_lua.go publish:
//
//	p<offset>,<epoch>,<unix ms>,<len(from)>,<from><data>
//	j<len(conn)>,<conn><user>   (and l… for a leave)
//
// It never panics, whatever payload it is given.
func decodeEvent(channel, payload string) (event, error) {
	if payload == "" {
		return event{}, errBadEvent
	}
	ev := event{kind: payload[0]}
	rest := payload[1:]
	switch ev.kind {
	case evPublication:
		off, rest, ok1 := strings.Cut(rest, ",")
		epoch, rest, ok2 := strings.Cut(rest, ",")
		ms, rest, ok3 := strings.Cut(rest, ",")
		if !ok1 || !ok2 || !ok3 || epoch == "" {
			return event{}, errBadEvent
		}
		offset, err := strconv.ParseUint(off, 10, 64)
		if err != nil || offset == 0 {
			return event{}, errBadEvent
		}
		t, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			return event{}, errBadEvent
		}
		from, data, err := cutLen(rest)
		if err != nil {
			return event{}, err
		}
		ev.pub = broker.Publication{
			Channel: channel, Offset: offset, Epoch: epoch,
			Data: []byte(data), From: from, Time: time.UnixMilli(t),
		}
	case evJoin, evLeave:
		conn, user, err := cutLen(rest)
		if err != nil || conn == "" {
			return event{}, errBadEvent
		}
		ev.info = broker.ClientInfo{ConnID: conn, User: user}
	default:
		return event{}, errBadEvent
	}
	return ev, nil
}

// cutLen splits "<n>,<n bytes><rest>".
func cutLen(s string) (head, rest string, err error) {
	ns, s, ok := strings.Cut(s, ",")
	if !ok {
		return "", "", errBadEvent
	}
	n, err := strconv.Atoi(ns)
	if err != nil || n < 0 || n > len(s) {
		return "", "", errBadEvent
	}
	return s[:n], s[n:], nil
}
