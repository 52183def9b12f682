package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wsgate/wsgate/internal/conn/integrity"
)

func b64Decode(s string) ([]byte, error) { return integrity.UnB64(s) }

// SubscribeOptions configure one subscription. Handlers run on the client's
// event goroutine, one at a time, in the order the server sent things.
type SubscribeOptions struct {
	// Since starts from a known position (e.g. one saved by the application):
	// the server replays what came after it, or reports RecoveryFailed.
	Since *Position
	// Token returns a per-channel subscription token (a JWT whose "channel"
	// claim names the channel); nil when the connection token's claims suffice.
	Token TokenFunc
	// OnMessage receives each publication exactly once, in offset order,
	// including those recovered after a reconnect.
	OnMessage func(Message)
	// OnRecoveryFailed is called when messages were lost (history too short,
	// epoch changed): resync the channel's state. When nil, the client's
	// OnEvent gets an EventError with a *RecoveryFailedError instead.
	OnRecoveryFailed func(RecoveryFailed)
	// OnJoin and OnLeave receive presence pushes (namespaces with join_leave).
	OnJoin, OnLeave func(PresenceEvent)
	// OnError is called when the server refuses the subscription after a
	// reconnect (e.g. permission_denied with a new token); it has then ended.
	OnError func(error)
}

// RecoveryFailedError carries a RecoveryFailed to OnEvent when the
// subscription has no OnRecoveryFailed handler.
type RecoveryFailedError struct{ RecoveryFailed }

func (e *RecoveryFailedError) Error() string {
	return fmt.Sprintf("client: recovery failed on %s: continuing at %d/%s, last seen %d/%s",
		e.Channel, e.Position.Offset, e.Position.Epoch, e.Previous.Offset, e.Previous.Epoch)
}

// Subscription is a channel subscription that survives reconnects.
type Subscription struct {
	c       *Client
	channel string
	o       SubscribeOptions

	// guarded by c.mu
	pos    Position
	hasPos bool
	first  chan error // the first ack or refusal, buffered 1; nil after
}

// Channel is the subscribed channel.
func (s *Subscription) Channel() string { return s.channel }

// Position is the last position delivered (or acknowledged); save it to
// resume later with SubscribeOptions.Since.
func (s *Subscription) Position() Position {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.pos
}

// Subscribe subscribes to channel and waits for the server's ack (the first
// one, which comes after the next connect if the client is disconnected).
// From then on the subscription is renewed on every reconnect with the last
// position, so handlers see every message once, in order, or a RecoveryFailed.
func (c *Client) Subscribe(ctx context.Context, channel string, o *SubscribeOptions) (*Subscription, error) {
	first := make(chan error, 1)
	s := &Subscription{c: c, channel: channel, first: first}
	if o != nil {
		s.o = *o
	}
	if s.o.Since != nil {
		s.pos, s.hasPos = *s.o.Since, true
	}
	c.sendMu.Lock()
	c.mu.Lock()
	if c.closeErr != nil {
		c.mu.Unlock()
		c.sendMu.Unlock()
		return nil, ErrClosed
	}
	if _, dup := c.subs[channel]; dup {
		c.mu.Unlock()
		c.sendMu.Unlock()
		return nil, fmt.Errorf("client: already subscribed to %s", channel)
	}
	c.subs[channel] = s
	cn := c.cur
	c.mu.Unlock()
	if cn != nil {
		c.resubscribe(cn, s)
	}
	c.sendMu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.o.RequestTimeout)
		defer cancel()
	}
	select {
	case err := <-first:
		if err != nil {
			return nil, err
		}
		return s, nil
	case <-ctx.Done():
		c.dropSub(s)
		return nil, ctxError(ctx.Err())
	}
}

// resubscribe sends a subscribe for s on cn (sendMu held).
func (c *Client) resubscribe(cn *conn, s *Subscription) {
	fields := map[string]any{"channel": s.channel}
	c.mu.Lock()
	since := s.hasPos
	if since {
		fields["since"] = s.pos
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = &pending{conn: cn, done: func(r reply, err error) { c.subAck(s, since, r, err) }}
	c.mu.Unlock()
	if s.o.Token != nil {
		ctx, cancel := context.WithTimeout(c.ctx, c.o.RequestTimeout)
		tok, err := s.o.Token(ctx)
		cancel()
		if err != nil {
			c.forget(id)
			c.subAck(s, since, reply{}, fmt.Errorf("client: subscription token for %s: %w", s.channel, err))
			return
		}
		fields["token"] = tok
	}
	msg, err := encodeRequest("subscribe", id, fields)
	if err == nil {
		err = cn.write("subscribe", msg)
	}
	if err != nil {
		c.log.Debug("client: subscribe write failed", "channel", s.channel, "err", err)
		// The connection is failing; connLost answers the pending entry and
		// the next connection subscribes again.
	}
}

// subAck handles the answer to a (re)subscribe (reader goroutine, no locks).
func (c *Client) subAck(s *Subscription, sentSince bool, r reply, err error) {
	c.mu.Lock()
	if c.subs[s.channel] != s { // unsubscribed meanwhile
		c.mu.Unlock()
		return
	}
	first := s.first
	if err != nil {
		fatal := errors.Is(err, ErrClosed) || !errors.Is(err, ErrDisconnected)
		if fatal && first != nil {
			s.first = nil
			delete(c.subs, s.channel)
		}
		c.mu.Unlock()
		if fatal && first != nil {
			first <- err
		}
		return
	}
	switch r.Type {
	case "ack":
		// A recovered ack is followed by the missed messages, which move the
		// position themselves; otherwise the ack is the starting point.
		if !(sentSince && r.Recovered) && r.Offset != nil {
			s.pos, s.hasPos = Position{Offset: *r.Offset, Epoch: r.Epoch}, true
		}
		s.first = nil
		c.mu.Unlock()
		if first != nil {
			first <- nil
		}
	case "recovery_failed":
		prev := s.pos
		if r.Offset != nil {
			s.pos, s.hasPos = Position{Offset: *r.Offset, Epoch: r.Epoch}, true
		}
		rf := RecoveryFailed{Channel: s.channel, Position: s.pos, Previous: prev}
		s.first = nil
		c.mu.Unlock()
		if first != nil {
			first <- nil
		}
		if h := s.o.OnRecoveryFailed; h != nil {
			c.enqueue(func() { h(rf) })
		} else {
			c.emit(Event{Kind: EventError, Err: &RecoveryFailedError{rf}})
		}
	default: // "error"
		delete(c.subs, s.channel)
		s.first = nil
		c.mu.Unlock()
		serr := error(r.serverError())
		if r.Type != "error" {
			serr = fmt.Errorf("client: unexpected subscribe reply %q", r.Type)
		}
		if first != nil {
			first <- serr
		} else if h := s.o.OnError; h != nil {
			c.enqueue(func() { h(serr) })
		} else {
			c.emit(Event{Kind: EventError, Err: fmt.Errorf("client: subscription %s ended: %w", s.channel, serr)})
		}
	}
}

// recoveryFailed handles a recovery_failed that no pending subscribe claimed.
func (c *Client) recoveryFailed(r reply) {
	c.mu.Lock()
	s := c.subs[r.Channel]
	c.mu.Unlock()
	if s != nil {
		c.subAck(s, true, r, nil)
	}
}

// deliver passes a publication to its subscription, once.
func (c *Client) deliver(m Message) {
	c.mu.Lock()
	s := c.subs[m.Channel]
	if s == nil {
		c.mu.Unlock()
		return
	}
	if s.hasPos && m.Epoch == s.pos.Epoch && m.Offset <= s.pos.Offset {
		c.mu.Unlock()
		return // already delivered (a recovery overlapping live delivery)
	}
	s.pos, s.hasPos = Position{Offset: m.Offset, Epoch: m.Epoch}, true
	c.mu.Unlock()
	if h := s.o.OnMessage; h != nil {
		c.enqueue(func() { h(m) })
	}
}

func (c *Client) presenceEvent(typ string, p PresenceEvent) {
	c.mu.Lock()
	s := c.subs[p.Channel]
	c.mu.Unlock()
	if s == nil {
		return
	}
	h := s.o.OnJoin
	if typ == "left" {
		h = s.o.OnLeave
	}
	if h != nil {
		c.enqueue(func() { h(p) })
	}
}

func (c *Client) dropSub(s *Subscription) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subs[s.channel] != s {
		return false
	}
	delete(c.subs, s.channel)
	return true
}

// Unsubscribe ends the subscription: no handler is called for it afterwards
// (except those already queued).
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	c := s.c
	if !c.dropSub(s) {
		return nil
	}
	c.mu.Lock()
	connected := c.cur != nil
	c.mu.Unlock()
	if !connected {
		return nil // the next connection simply does not subscribe
	}
	_, err := c.request(ctx, "unsubscribe", map[string]any{"channel": s.channel})
	var se *ServerError
	if errors.As(err, &se) && se.Code == "not_subscribed" {
		return nil
	}
	return err
}

// Publish publishes to the subscription's channel.
func (s *Subscription) Publish(ctx context.Context, payload any) (Position, error) {
	return s.c.Publish(ctx, s.channel, payload)
}

// History reads the subscription's channel history.
func (s *Subscription) History(ctx context.Context, o *HistoryOptions) (*History, error) {
	return s.c.History(ctx, s.channel, o)
}

// Presence lists who is subscribed to the subscription's channel.
func (s *Subscription) Presence(ctx context.Context) ([]ClientInfo, error) {
	return s.c.Presence(ctx, s.channel)
}

// HistoryOptions select part of a channel's history.
type HistoryOptions struct {
	Since *Position // after this position; nil: from the oldest kept
	Limit int       // at most this many (the server caps at 100)
}

// History is a history reply.
type History struct {
	Publications []Message `json:"publications"`
	Offset       uint64    `json:"offset"`
	Epoch        string    `json:"epoch"`
	// Truncated: the reply was cut; ask again with Since = the last one received.
	Truncated bool `json:"truncated"`
}

// History reads a channel's history (the client must be subscribed to it).
func (c *Client) History(ctx context.Context, channel string, o *HistoryOptions) (*History, error) {
	fields := map[string]any{"channel": channel}
	if o != nil {
		if o.Since != nil {
			fields["since"] = o.Since
		}
		if o.Limit > 0 {
			fields["limit"] = o.Limit
		}
	}
	r, err := c.request(ctx, "history", fields)
	if err != nil {
		return nil, err
	}
	var h History
	if err := json.Unmarshal(r.raw, &h); err != nil {
		return nil, fmt.Errorf("client: history reply: %w", err)
	}
	for i := range h.Publications {
		if h.Publications[i].Channel == "" {
			h.Publications[i].Channel = channel
		}
		if err := c.openPayload(&h.Publications[i]); err != nil {
			return nil, err // never a mix of opened and unopened payloads
		}
	}
	return &h, nil
}

// Presence lists the connections subscribed to channel (presence must be on
// in its namespace, and the client subscribed).
func (c *Client) Presence(ctx context.Context, channel string) ([]ClientInfo, error) {
	r, err := c.request(ctx, "presence", map[string]any{"channel": channel})
	if err != nil {
		return nil, err
	}
	var p struct {
		Users []ClientInfo `json:"users"`
	}
	if err := json.Unmarshal(r.raw, &p); err != nil {
		return nil, fmt.Errorf("client: presence reply: %w", err)
	}
	return p.Users, nil
}
