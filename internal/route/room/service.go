package room

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/route/command"
	"github.com/wsgate/wsgate/internal/state/broker"
	"github.com/wsgate/wsgate/internal/state/shardmap"
)

// Client is one connection as the room sees it.
type Client interface {
	ConnID() string         // unique per live connection
	User() string           // authenticated subject ("" for anonymous)
	Claims() map[string]any // verified token claims, read only
	// Send queues b without blocking; b is shared with other clients and must not
	// be modified. An error means the client is a slow consumer: the session
	// closes it, the room just moves on.
	Send(b []byte) error
}

// Service is the real-time core of one node.
type Service struct {
	opts    Options
	ns      atomic.Pointer[map[string]Namespace] // replaced whole by SetNamespaces
	broker  broker.Broker
	log     *slog.Logger
	hub     *hub
	clients *clientTable
	// stripes serialise the first-subscriber/last-unsubscriber transitions of a
	// channel (broker Subscribe/Unsubscribe) without a global lock.
	stripes [lockStripes]sync.Mutex
}

// New checks opts and returns a Service publishing through b. Call Run to receive
// the broker's events.
func New(opts Options, b broker.Broker) (*Service, error) {
	if b == nil {
		return nil, errors.New("room: nil broker")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Service{opts: o, broker: b, log: slog.Default().With("component", "room"), hub: newHub(), clients: newClientTable()}
	s.ns.Store(&o.Namespaces)
	return s, nil
}

// SetNamespaces replaces the namespaces for what happens next (hot reload):
// subscriptions already made stay; new subscribes, publishes, history and presence
// requests follow the new settings. The set is checked as New checks it and
// refused whole when invalid.
func (s *Service) SetNamespaces(ns map[string]Namespace) error {
	o := s.opts
	o.Namespaces = ns
	o, err := o.withDefaults()
	if err != nil {
		return err
	}
	s.ns.Store(&o.Namespaces)
	return nil
}

// SetLogger replaces the logger (default slog.Default()); call before Run.
func (s *Service) SetLogger(l *slog.Logger) {
	if l != nil {
		s.log = l.With("component", "room")
	}
}

// Run delivers the broker's events to local subscribers until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if err := s.broker.Run(ctx, events{s}); err != nil {
		return fmt.Errorf("room: broker: %w", err)
	}
	return nil
}

// Handles reports whether typ is a message type Handle serves.
func Handles(typ string) bool {
	switch typ {
	case protocol.TypeSubscribe, protocol.TypeUnsubscribe, protocol.TypePublish, protocol.TypeChat, protocol.TypeData,
		protocol.TypePresence, protocol.TypeHistory, protocol.TypeCommand:
		return true
	}
	return false
}

// Handle processes one validated message of c: typ is its "type", id the raw JSON
// of its "id" (nil if none) and raw the whole message (located by ParseRequest;
// the server's router calls HandleRequest with the pipeline's scan instead).
// Handle sends every reply
// (ack, result or error) to c itself, in order with the channel pushes. It returns
// nil on success, or the *protocol.Error it already sent so the caller can count strikes
// (Error.Strike) and log Error.Err. Calls for one client must not overlap, and none
// may start after Leave(c). A `command` blocks for up to CommandTimeout.
func (s *Service) Handle(ctx context.Context, c Client, typ string, id, raw []byte) *protocol.Error {
	return s.HandleRequest(ctx, c, ParseRequest(typ, id, raw))
}

// Request is a validated client message as the room reads it: its type, the raw
// JSON of its "id", and the raw JSON values of the top-level members the room acts
// on (nil when absent). Member names match exactly ("Channel" is not "channel"),
// so the room acts on the members the schema validated. The pipeline's structure
// scan locates them (pipeline.Members); ParseRequest does it for a raw message.
type Request struct {
	Type                                              string
	ID                                                []byte
	Channel, Payload, Text, Since, Token, Limit, Name []byte
}

// ParseRequest locates the members of raw for HandleRequest, for callers without
// the pipeline's scan (tests, other embedders). A malformed raw leaves them nil.
func ParseRequest(typ string, id, raw []byte) Request {
	r := Request{Type: typ, ID: id}
	var m map[string]json.RawMessage // exact keys, unlike decoding into a struct
	if json.Unmarshal(raw, &m) != nil {
		return r
	}
	r.Channel, r.Payload, r.Text, r.Since = m["channel"], m["payload"], m["text"], m["since"]
	r.Token, r.Limit, r.Name = m["token"], m["limit"], m["name"]
	return r
}

// HandleRequest is Handle for a message whose members are already located.
func (s *Service) HandleRequest(ctx context.Context, c Client, r Request) *protocol.Error {
	id := r.ID
	if len(id) > 0 && !json.Valid(id) {
		id = nil
	}
	var e *protocol.Error
	switch r.Type {
	case protocol.TypeSubscribe:
		e = s.handleSubscribe(ctx, c, id, r)
	case protocol.TypeUnsubscribe:
		e = s.handleUnsubscribe(ctx, c, id, r)
	case protocol.TypePublish, protocol.TypeChat, protocol.TypeData:
		e = s.handlePublish(ctx, c, r.Type, id, r)
	case protocol.TypePresence:
		e = s.handlePresence(ctx, c, id, r)
	case protocol.TypeHistory:
		e = s.handleHistory(ctx, c, id, r)
	case protocol.TypeCommand:
		e = s.handleCommand(ctx, c, id, r)
	default:
		e = newErr(protocol.CodeUnknownType, "unknown message type", true)
	}
	if e != nil {
		e.Ref = id
		_ = c.Send(e.Encode())
	}
	return e
}

// channelNS validates ch and returns its namespace config.
// encode renders a publication for clients, signed by the server when its
// namespace asks for signed output.
func (s *Service) encode(p broker.Publication) ([]byte, error) {
	msg, err := encodePublication(p)
	if err != nil || s.opts.SignOutput == nil {
		return msg, err
	}
	if ns, e := s.channelNS(p.Channel); e == nil && ns.SignOutput {
		return s.opts.SignOutput(msg), nil
	}
	return msg, nil
}

// IntegrityReporter is implemented by clients that know how the message being
// handled was signed: "" (unsigned), "hmac" or "pop".
type IntegrityReporter interface {
	MessageIntegrity() string
}

func messageIntegrity(c Client) string {
	if r, ok := c.(IntegrityReporter); ok {
		return r.MessageIntegrity()
	}
	return ""
}

// requireIntegrity refuses a request into ns unless the message being handled was
// signed in ns's integrity mode. It guards every request that reads or writes a
// channel's content (subscribe, and so its pushes, history, presence, publish): a
// connection that proved no key (a pop token without its private key, a plain
// token without the hmac key) reads nothing of the namespace either.
func requireIntegrity(c Client, ns Namespace) *protocol.Error {
	if ns.Integrity != "" && ns.Integrity != "off" && messageIntegrity(c) != ns.Integrity {
		return newErr(protocol.CodeIntegrityRequired, "requests in this namespace must be signed ("+ns.Integrity+")", true)
	}
	return nil
}

// requestNS is the namespace of a request by c that reads or writes ch: ch
// must be a valid channel of a configured namespace, and the request signed as
// that namespace requires.
func (s *Service) requestNS(c Client, ch string) (Namespace, *protocol.Error) {
	ns, e := s.channelNS(ch)
	if e == nil {
		e = requireIntegrity(c, ns)
	}
	return ns, e
}

func (s *Service) channelNS(ch string) (Namespace, *protocol.Error) {
	nsName, _, ok := parseChannel(ch)
	if !ok {
		return Namespace{}, newErr(protocol.CodeBadChannel, "invalid channel name", true)
	}
	ns, ok := (*s.ns.Load())[nsName]
	if !ok {
		return Namespace{}, newErr(protocol.CodeUnknownNamespace, "unknown channel namespace", true)
	}
	return ns, nil
}

func internalErr(msg string, err error) *protocol.Error {
	e := newErr(protocol.CodeInternal, msg, false)
	e.Err = err
	return e
}

func badRequest(err error) *protocol.Error {
	e := newErr(protocol.CodeBadRequest, "malformed message", true)
	e.Err = err
	return e
}

type since struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

type subscribeReq struct {
	Channel string
	Since   *since
	Token   string
}

// decode sets *dst from a member's raw JSON; an absent member leaves it zero (as
// JSON null does).
func decode(raw []byte, dst any) error {
	if raw == nil {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("decode member: %w", err)
	}
	return nil
}

// decodeString is decode for a string member, without encoding/json for the
// common string that has no escapes.
func decodeString(raw []byte, dst *string) error {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		if in := raw[1 : n-1]; bytes.IndexByte(in, '\\') < 0 && bytes.IndexByte(in, '"') < 0 && utf8.Valid(in) {
			*dst = string(in) // no escapes: the bytes are the value
			return nil
		}
	}
	return decode(raw, dst)
}

// decodeAll decodes each member, stopping at the first error.
func decodeAll(steps ...error) error {
	for _, err := range steps {
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) authorizeSubscribe(ctx context.Context, c Client, ch, token string) *protocol.Error {
	if token != "" && s.opts.SubscriptionTokenVerify != nil {
		claims, err := s.opts.SubscriptionTokenVerify(ctx, token)
		if err == nil {
			chClaim, _ := claims["channel"].(string)
			sub, _ := claims["sub"].(string)
			if chClaim == ch && sub == c.User() {
				return nil
			}
			err = errors.New("subscription token for another channel or user")
		}
		e := newErr(protocol.CodePermissionDenied, "invalid subscription token", true)
		e.Err = err
		return e
	}
	if allowed(c.Claims(), s.opts.ChannelClaim, "sub", ch) {
		return nil
	}
	return newErr(protocol.CodePermissionDenied, "not allowed to subscribe to this channel", true)
}

func (s *Service) handleSubscribe(ctx context.Context, c Client, id []byte, r Request) *protocol.Error {
	var req subscribeReq
	if err := decodeAll(decodeString(r.Channel, &req.Channel), decode(r.Since, &req.Since), decodeString(r.Token, &req.Token)); err != nil {
		return badRequest(err)
	}
	ns, e := s.requestNS(c, req.Channel)
	if e != nil {
		return e
	}
	if e := s.authorizeSubscribe(ctx, c, req.Channel, req.Token); e != nil {
		return e
	}
	if ns.Checks != nil {
		if e := ns.Checks.CheckSubscribe(ctx, c, req.Channel); e != nil {
			return e
		}
	}
	cs := s.clients.get(c.ConnID(), true)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.subs.get(req.Channel) != nil {
		return newErr(protocol.CodeAlreadySubscribed, "already subscribed", false)
	}
	if len(cs.subs) >= s.opts.MaxChannelsPerClient {
		return newErr(protocol.CodeTooManyChannels, "too many subscriptions", true)
	}
	sub := &subscription{client: c, channel: req.Channel}
	if e := s.attach(ctx, sub, ns); e != nil {
		return e
	}
	cs.subs = append(cs.subs, sub)
	cs.current = sub.channel // the hub's copy of the name (attach)
	if ns.Presence {
		if err := s.broker.AddPresence(ctx, req.Channel, broker.ClientInfo{ConnID: c.ConnID(), User: c.User()}); err != nil {
			s.log.Warn("add presence failed", "channel", req.Channel, "err", err)
		}
	}

	// The subscription is buffering live publications; now learn where the client
	// stands, tell it, replay what it missed, then release the buffer.
	var (
		pubs      []broker.Publication
		pos       broker.StreamPosition
		err       error
		recovered bool
	)
	if req.Since != nil {
		pubs, pos, err = s.broker.History(ctx, req.Channel, &broker.StreamPosition{Offset: req.Since.Offset, Epoch: req.Since.Epoch}, 0)
		recovered = err == nil
		if errors.Is(err, broker.ErrRecoveryFailed) {
			if pos.Epoch == "" {
				_, pos, err = s.broker.History(ctx, req.Channel, nil, 1)
			} else {
				err = nil
			}
		}
	} else {
		_, pos, err = s.broker.History(ctx, req.Channel, nil, 1)
	}
	if err != nil {
		s.detach(ctx, cs, sub, ns)
		return internalErr("channel state unavailable", fmt.Errorf("subscribe %q: %w", req.Channel, err))
	}
	if req.Since != nil && !recovered {
		_ = c.Send(encodeRecoveryFailed(req.Channel, pos.Offset, pos.Epoch, id))
	} else {
		_ = c.Send(encodeAck(ack{Ref: id, Channel: req.Channel, Offset: &pos.Offset, Epoch: &pos.Epoch, Recovered: recoveredFlag(req.Since != nil)}))
		for _, p := range pubs {
			msg, err := s.encode(p)
			if err != nil {
				s.log.Warn("bad publication in history", "channel", p.Channel, "offset", p.Offset, "err", err)
				continue
			}
			_ = c.Send(msg)
			if p.Epoch == pos.Epoch && p.Offset > pos.Offset {
				pos.Offset = p.Offset
			}
		}
	}
	sub.goLive(posLike{pos.Offset, pos.Epoch}, func(off uint64, epoch string) {
		_ = c.Send(encodeRecoveryFailed(req.Channel, off, epoch, id))
	})
	return nil
}

func recoveredFlag(withSince bool) *bool {
	if !withSince {
		return nil
	}
	t := true
	return &t
}

// attach puts sub in the hub, subscribing this node in the broker when it is the
// channel's first local subscriber.
func (s *Service) attach(ctx context.Context, sub *subscription, ns Namespace) *protocol.Error {
	mu := &s.stripes[maphash64(sub.channel)%lockStripes]
	mu.Lock()
	defer mu.Unlock()
	n := s.hub.count(sub.channel)
	if ns.MaxSubscribers > 0 && n >= ns.MaxSubscribers {
		return newErr(protocol.CodeChannelFull, "channel is full", false)
	}
	if n == 0 {
		if err := s.broker.Subscribe(ctx, sub.channel); err != nil {
			return internalErr("subscribe failed", fmt.Errorf("broker subscribe %q: %w", sub.channel, err))
		}
	}
	s.hub.add(sub)
	return nil
}

// detach undoes attach and the presence entry and forgets sub in cs (cs.mu held).
func (s *Service) detach(ctx context.Context, cs *clientState, sub *subscription, ns Namespace) {
	mu := &s.stripes[maphash64(sub.channel)%lockStripes]
	mu.Lock()
	if s.hub.remove(sub) == 0 {
		if err := s.broker.Unsubscribe(ctx, sub.channel); err != nil {
			s.log.Warn("broker unsubscribe failed", "channel", sub.channel, "err", err)
		}
	}
	mu.Unlock()
	if ns.Presence {
		if err := s.broker.RemovePresence(ctx, sub.channel, sub.client.ConnID()); err != nil {
			s.log.Warn("remove presence failed", "channel", sub.channel, "err", err)
		}
	}
	cs.subs.remove(sub)
	if cs.current == sub.channel {
		cs.current = ""
	}
}

type channelReq struct {
	Channel string
}

func (s *Service) handleUnsubscribe(ctx context.Context, c Client, id []byte, r Request) *protocol.Error {
	var req channelReq
	if err := decodeString(r.Channel, &req.Channel); err != nil {
		return badRequest(err)
	}
	ns, e := s.channelNS(req.Channel)
	if e != nil {
		return e
	}
	cs := s.clients.get(c.ConnID(), false)
	if cs == nil {
		return newErr(protocol.CodeNotSubscribed, "not subscribed", false)
	}
	cs.mu.Lock()
	sub := cs.subs.get(req.Channel)
	if sub == nil {
		cs.mu.Unlock()
		return newErr(protocol.CodeNotSubscribed, "not subscribed", false)
	}
	s.detach(ctx, cs, sub, ns)
	cs.mu.Unlock()
	_ = c.Send(encodeAck(ack{Ref: id, Channel: req.Channel}))
	return nil
}

type publishReq struct {
	Channel string
	Payload json.RawMessage
	Text    *string
}

func (s *Service) handlePublish(ctx context.Context, c Client, typ string, id []byte, r Request) *protocol.Error {
	req := publishReq{Payload: r.Payload}
	if err := decodeAll(decodeString(r.Channel, &req.Channel), decode(r.Text, &req.Text)); err != nil {
		return badRequest(err)
	}
	cs := s.clients.get(c.ConnID(), true)
	ch := req.Channel
	if ch == "" && typ != protocol.TypePublish {
		cs.mu.Lock()
		ch = cs.current
		cs.mu.Unlock()
		if ch == "" {
			ch = s.opts.DefaultChannel
		}
	}
	var payload []byte
	switch typ {
	case protocol.TypeChat:
		if req.Text == nil {
			return badRequest(errors.New("chat without text"))
		}
		t, err := json.Marshal(*req.Text)
		if err != nil {
			return badRequest(err)
		}
		payload = append(append([]byte(`{"text":`), t...), '}')
	default:
		if len(req.Payload) == 0 {
			return badRequest(errors.New("missing payload"))
		}
		// Copy: the broker retains the bytes and raw may be a reused read buffer.
		payload = append([]byte(nil), req.Payload...)
	}
	ns, e := s.channelNS(ch)
	if e != nil {
		return e
	}
	if !ns.ClientPublish {
		return newErr(protocol.CodePublishDisabled, "clients may not publish in this namespace", true)
	}
	if !allowed(c.Claims(), s.opts.ChannelClaim, "pub", ch) {
		return newErr(protocol.CodePermissionDenied, "not allowed to publish to this channel", true)
	}
	if e := requireIntegrity(c, ns); e != nil {
		return e
	}
	if ns.Checks != nil {
		if payload, e = ns.Checks.CheckPublish(ctx, c, ch, payload); e != nil {
			return e
		}
	}
	pos, err := s.broker.Publish(ctx, ch, payload, c.User(), broker.PublishOptions{HistorySize: ns.HistorySize, HistoryTTL: ns.HistoryTTL})
	if err != nil {
		return internalErr("publish failed", fmt.Errorf("publish %q: %w", ch, err))
	}
	cs.mu.Lock()
	cs.current = ch
	cs.mu.Unlock()
	_ = c.Send(encodeAck(ack{Ref: id, Channel: ch, Offset: &pos.Offset, Epoch: &pos.Epoch}))
	return nil
}

// subscribed returns nil when c is subscribed to ch.
func (s *Service) subscribed(c Client, ch string) *protocol.Error {
	if cs := s.clients.get(c.ConnID(), false); cs != nil {
		cs.mu.Lock()
		ok := cs.subs.get(ch) != nil
		cs.mu.Unlock()
		if ok {
			return nil
		}
	}
	return newErr(protocol.CodeNotSubscribed, "subscribe to the channel first", true)
}

func (s *Service) handlePresence(ctx context.Context, c Client, id []byte, r Request) *protocol.Error {
	var req channelReq
	if err := decodeString(r.Channel, &req.Channel); err != nil {
		return badRequest(err)
	}
	ns, e := s.requestNS(c, req.Channel)
	if e != nil {
		return e
	}
	if !ns.Presence {
		return newErr(protocol.CodePresenceDisabled, "presence is disabled in this namespace", false)
	}
	if e := s.subscribed(c, req.Channel); e != nil {
		return e
	}
	users, err := s.broker.Presence(ctx, req.Channel)
	if err != nil {
		return internalErr("presence unavailable", fmt.Errorf("presence %q: %w", req.Channel, err))
	}
	if users == nil {
		users = []broker.ClientInfo{}
	}
	b, err := json.Marshal(struct {
		Type    string              `json:"type"`
		Channel string              `json:"channel"`
		Users   []broker.ClientInfo `json:"users"`
		Ref     json.RawMessage     `json:"ref,omitempty"`
	}{protocol.TypePresence, req.Channel, users, id})
	if err != nil {
		return internalErr("presence unavailable", err)
	}
	_ = c.Send(b)
	return nil
}

type historyReq struct {
	Channel string
	Since   *since
	Limit   int
}

func (s *Service) handleHistory(ctx context.Context, c Client, id []byte, r Request) *protocol.Error {
	var req historyReq
	if err := decodeAll(decodeString(r.Channel, &req.Channel), decode(r.Since, &req.Since), decode(r.Limit, &req.Limit)); err != nil {
		return badRequest(err)
	}
	if _, e := s.requestNS(c, req.Channel); e != nil {
		return e
	}
	if e := s.subscribed(c, req.Channel); e != nil {
		return e
	}
	limit := req.Limit
	if limit <= 0 || limit > s.opts.MaxHistoryLimit {
		limit = s.opts.MaxHistoryLimit
	}
	var sp *broker.StreamPosition
	if req.Since != nil {
		sp = &broker.StreamPosition{Offset: req.Since.Offset, Epoch: req.Since.Epoch}
	}
	pubs, pos, err := s.broker.History(ctx, req.Channel, sp, limit)
	if errors.Is(err, broker.ErrRecoveryFailed) {
		e := newErr(protocol.CodeRecoveryFailed, "history not available from that position", false)
		e.Err = err
		return e
	}
	if err != nil {
		return internalErr("history unavailable", fmt.Errorf("history %q: %w", req.Channel, err))
	}
	// The reply is bounded in bytes as well as in count: a small request must not
	// buy an arbitrarily large answer (and its encoding CPU). A cut reply says
	// "truncated"; the client pages on with since = the last offset it got.
	ch, _ := json.Marshal(req.Channel)
	b := make([]byte, 0, 256)
	b = append(b, `{"type":"history","channel":`...)
	b = append(b, ch...)
	b = append(b, `,"publications":[`...)
	truncated := false
	n := 0
	for _, p := range pubs {
		msg, err := s.encode(p)
		if err != nil {
			continue
		}
		if n > 0 && len(b)+len(msg) > s.opts.MaxHistoryReplyBytes {
			truncated = true
			break
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, msg...)
		n++
	}
	b = append(b, `],"offset":`...)
	b = strconv.AppendUint(b, pos.Offset, 10)
	ep, _ := json.Marshal(pos.Epoch)
	b = append(append(b, `,"epoch":`...), ep...)
	if truncated {
		b = append(b, `,"truncated":true`...)
	}
	if id != nil {
		b = append(append(b, `,"ref":`...), id...)
	}
	b = append(b, '}')
	_ = c.Send(b)
	return nil
}

type commandReq struct {
	Name    string
	Payload json.RawMessage
}

func validCommandName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if !nsByte(n[i]) && n[i] != ':' && n[i] != '/' {
			return false
		}
	}
	return true
}

func (s *Service) handleCommand(ctx context.Context, c Client, id []byte, r Request) *protocol.Error {
	// A copy: the handler may keep the payload, and the message may be a reused buffer.
	req := commandReq{Payload: bytes.Clone(r.Payload)}
	if err := decodeString(r.Name, &req.Name); err != nil {
		return badRequest(err)
	}
	if !validCommandName(req.Name) {
		return newErr(protocol.CodeBadRequest, "invalid command name", true)
	}
	if s.opts.Commands == nil {
		return newErr(protocol.CodeCommandUnavailable, "commands are not configured", false)
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.CommandTimeout)
	defer cancel()
	res, err := s.opts.Commands.Call(cctx, command.Request{
		Name: req.Name, Payload: req.Payload, User: c.User(), ConnID: c.ConnID(), Claims: c.Claims(),
	})
	if err == nil && (len(res) > 0 && !json.Valid(res)) {
		err = &command.Error{Kind: command.KindBadResponse, Err: errors.New("invalid JSON")}
	}
	if err != nil {
		var e *protocol.Error
		switch command.Classify(err) {
		case command.KindTimeout:
			e = newErr(protocol.CodeCommandTimeout, "command timed out", false)
		case command.KindBadResponse:
			e = newErr(protocol.CodeCommandBadResponse, "command returned an invalid answer", false)
		default:
			e = newErr(protocol.CodeCommandBackend, "command failed", false)
		}
		e.Err = err
		return e
	}
	_ = c.Send(command.Result(id, res))
	return nil
}

// Leave drops everything c holds: subscriptions (unsubscribing the node from
// channels nobody else here wants) and presence. Call it once, after the last
// Handle for c returned. ctx bounds the broker calls (OpTimeout if it has none).
func (s *Service) Leave(ctx context.Context, c Client) {
	cs := s.clients.remove(c.ConnID())
	if cs == nil {
		return
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opts.OpTimeout)
		defer cancel()
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	// detach removes each from cs.subs: walk a copy.
	for _, sub := range slices.Clone(cs.subs) {
		ns, _ := s.channelNS(sub.channel)
		s.detach(ctx, cs, sub, ns)
	}
}

// Publish publishes payload (valid JSON) to channel on behalf of the server: no
// permission or ClientPublish check, but the channel must be valid and its
// namespace configured. from names the sender ("" for none).
func (s *Service) Publish(ctx context.Context, channel string, payload json.RawMessage, from string) (broker.StreamPosition, error) {
	ns, e := s.channelNS(channel)
	if e != nil {
		return broker.StreamPosition{}, e
	}
	if len(payload) == 0 || !json.Valid(payload) {
		return broker.StreamPosition{}, newErr(protocol.CodeBadRequest, "payload must be JSON", false)
	}
	pos, err := s.broker.Publish(ctx, channel, append([]byte(nil), payload...), from, broker.PublishOptions{HistorySize: ns.HistorySize, HistoryTTL: ns.HistoryTTL})
	if err != nil {
		return pos, fmt.Errorf("room: publish %q: %w", channel, err)
	}
	return pos, nil
}

// events receives the broker's callbacks; kept off Service's exported API.
type events struct{ s *Service }

func (ev events) HandlePublication(pub broker.Publication) {
	msg, err := ev.s.encode(pub)
	if err != nil {
		ev.s.log.Warn("dropping undecodable publication", "channel", pub.Channel, "offset", pub.Offset, "err", err)
		return
	}
	limit := ev.s.opts.RecoveryBuffer
	gaps := ev.s.hub.fanout(pub.Channel, func(sub *subscription) bool {
		return sub.deliver(pub.Offset, pub.Epoch, msg, limit)
	})
	if gaps > 0 {
		// Rare (Redis lost data, history too short for a reconnect, a new epoch):
		// worth a line each time, with how many clients it reached.
		ev.s.log.Warn("channel stream does not continue where subscribers were; sent recovery_failed",
			"channel", pub.Channel, "epoch", pub.Epoch, "offset", pub.Offset, "subscribers", gaps)
	}
}

func (ev events) HandleJoin(channel string, info broker.ClientInfo) {
	ev.presenceEvent(protocol.TypeJoined, channel, info)
}

func (ev events) HandleLeave(channel string, info broker.ClientInfo) {
	ev.presenceEvent(protocol.TypeLeft, channel, info)
}

func (ev events) presenceEvent(typ, channel string, info broker.ClientInfo) {
	ns, e := ev.s.channelNS(channel)
	if e != nil || !ns.JoinLeave {
		return
	}
	msg, err := json.Marshal(struct {
		Type    string `json:"type"`
		Channel string `json:"channel"`
		User    string `json:"user"`
		ConnID  string `json:"conn_id"`
	}{typ, channel, info.User, info.ConnID})
	if err != nil {
		return
	}
	limit := ev.s.opts.RecoveryBuffer
	ev.s.hub.each(channel, func(sub *subscription) {
		if sub.client.ConnID() != info.ConnID {
			sub.deliverEvent(msg, limit)
		}
	})
}

// Channels lists the channels connection connID is subscribed to, sorted (nil
// when none). It is for the admin API's view of a connection.
func (s *Service) Channels(connID string) []string {
	cs := s.clients.get(connID, false)
	if cs == nil {
		return nil
	}
	cs.mu.Lock()
	out := make([]string, 0, len(cs.subs))
	for _, sub := range cs.subs {
		out = append(out, sub.channel)
	}
	cs.mu.Unlock()
	slices.Sort(out)
	return out
}

// clientState is what the room remembers about one connection.
type clientState struct {
	mu      sync.Mutex
	subs    subList
	current string // channel for chat/data without one: last subscribed or published
}

// subList is one connection's subscriptions, at most one per channel. A
// slice searched in order, not a map: a connection holds a handful (at most
// MaxChannelsPerClient, 64 by default), and a map's first bucket group
// costs ≈ 200 B more for every subscribed connection (issue 20).
type subList []*subscription

// get is the subscription to ch, nil when there is none.
func (l subList) get(ch string) *subscription {
	for _, sub := range l {
		if sub.channel == ch {
			return sub
		}
	}
	return nil
}

// remove drops sub (only that very subscription), keeping the order.
func (l *subList) remove(sub *subscription) {
	if i := slices.Index(*l, sub); i >= 0 {
		*l = slices.Delete(*l, i, i+1)
	}
}

// clientTable maps a connection id to its subscriptions, on the project's
// sharded map.
type clientTable struct {
	m *shardmap.Map[string, *clientState]
}

func newClientTable() *clientTable {
	return &clientTable{m: shardmap.New[string, *clientState](shardmap.Options{Shards: hubShards})}
}

func (t *clientTable) get(connID string, create bool) *clientState {
	sh := t.m.For(connID)
	sh.Lock()
	defer sh.Unlock()
	cs, _ := sh.Get(connID)
	if cs == nil && create {
		cs = &clientState{}
		sh.Set(connID, cs)
	}
	return cs
}

func (t *clientTable) remove(connID string) *clientState {
	sh := t.m.For(connID)
	sh.Lock()
	defer sh.Unlock()
	cs, _ := sh.Get(connID)
	sh.Delete(connID)
	return cs
}

// Interface guard.
var _ broker.EventHandler = events{}
