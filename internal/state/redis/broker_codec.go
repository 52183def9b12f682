package redis

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/internal/state/broker"
)

// Event kinds on a channel's pub/sub topic.
const (
	evPublication = 'p'
	evBatch       = 'b' // several publications with consecutive offsets
	evJoin        = 'j'
	evLeave       = 'l'
)

var errBadEvent = errors.New("redis broker: malformed event")

// event is one decoded pub/sub message.
type event struct {
	kind byte
	pubs []broker.Publication // evPublication: one; evBatch: one or more, offsets consecutive
	info broker.ClientInfo
}

// decodeEvent parses what the scripts in broker_lua.go publish:
//
//	p<offset>,<epoch>,<unix ms>,<len(from)>,<from><data>
//	b<first offset>,<epoch>,<unix ms>,<n>,  then n times  <len(from)>,<from><len(data)>,<data>
//	j<len(conn)>,<conn><user>   (and l… for a leave)
//
// It never panics, whatever payload it is given, and allocates in proportion
// to the payload.
func decodeEvent(channel, payload string) (event, error) {
	if payload == "" {
		return event{}, errBadEvent
	}
	ev := event{kind: payload[0]}
	rest := payload[1:]
	switch ev.kind {
	case evPublication, evBatch:
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
		pub := broker.Publication{Channel: channel, Offset: offset, Epoch: epoch, Time: time.UnixMilli(t)}
		if ev.kind == evPublication {
			from, data, err := cutLen(rest)
			if err != nil {
				return event{}, err
			}
			pub.From, pub.Data = from, []byte(data)
			ev.pubs = []broker.Publication{pub}
			return ev, nil
		}
		ns, rest, ok := strings.Cut(rest, ",")
		n, err := strconv.ParseUint(ns, 10, 64)
		// Each entry takes at least four bytes ("0,0,"): a count the payload
		// cannot hold is malformed, and never sizes an allocation.
		if !ok || err != nil || n == 0 || n > uint64(len(rest)/4) || offset+n-1 < offset {
			return event{}, errBadEvent
		}
		ev.pubs = make([]broker.Publication, 0, n)
		for i := range n {
			var from, data string
			if from, rest, err = cutLen(rest); err != nil {
				return event{}, err
			}
			if data, rest, err = cutLen(rest); err != nil {
				return event{}, err
			}
			p := pub
			p.Offset, p.From, p.Data = offset+i, from, []byte(data)
			ev.pubs = append(ev.pubs, p)
		}
		if rest != "" {
			return event{}, errBadEvent
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
