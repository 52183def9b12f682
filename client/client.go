package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/state/encrypt"
)

// Client is a connection to wsgate that stays up: it reconnects, refreshes
// its token, resubscribes and recovers what it missed. Create one with Dial;
// it is safe for concurrent use.
type Client struct {
	url       string
	o         DialOptions
	log       *slog.Logger
	e2e       atomic.Pointer[encrypt.Keyring] // DialOptions.Encryption's keys (SetEncryptionKeys replaces them); nil without
	delivered atomic.Pointer[serverKeys]      // keys from the last ticket reply (Encryption.FromServer)

	ctx    context.Context // the client's lifetime; cancelled by Close
	cancel context.CancelFunc
	runEnd chan struct{} // closed when the connection loop has ended

	events    chan func() // bounded; run in order by eventLoop
	evStop    chan struct{}
	stopOnce  sync.Once
	evEnd     chan struct{}
	inHandler atomic.Bool

	// sendMu orders writes (and seals, so seq follows the wire order); taken
	// before mu, never by the reader.
	sendMu sync.Mutex

	mu       sync.Mutex
	state    State
	cur      *conn // the connection new messages go to; nil while disconnected
	welcome  Welcome
	subs     map[string]*Subscription
	pending  map[int64]*pending
	queue    []queued
	nextID   int64
	closeErr error // why the client ended
	first    chan error
	firstSet bool
}

type pending struct {
	conn *conn                    // the connection it was sent on; nil while queued
	done func(r reply, err error) // called exactly once (under no lock), never blocks
}

type queued struct {
	id  int64 // 0: no reply expected
	typ string
	msg []byte
}

// reply is a decoded server message that answers a request.
type reply struct {
	Type         string          `json:"type"`
	Ref          json.RawMessage `json:"ref"`
	Channel      string          `json:"channel"`
	Offset       *uint64         `json:"offset"`
	Epoch        string          `json:"epoch"`
	Recovered    bool            `json:"recovered"`
	Code         string          `json:"code"`
	Message      string          `json:"message"`
	Path         string          `json:"path"`
	RetryAfterMs int64           `json:"retry_after_ms"`
	ExpiresAt    int64           `json:"expires_at"`
	Result       json.RawMessage `json:"result"`
	raw          []byte
}

func (r *reply) serverError() *ServerError {
	return &ServerError{Code: r.Code, Message: r.Message, Path: r.Path, RetryAfter: time.Duration(r.RetryAfterMs) * time.Millisecond}
}

// Dial connects to a wsgate WebSocket URL (wss://host/ws) and returns once
// the server has welcomed the client. ctx bounds only this first connection
// (transient refusals are retried with backoff until it ends); the Client
// then lives until Close, reconnecting as needed. A terminal refusal (401,
// 403 other than a ban) is returned as a *HandshakeError.
func Dial(ctx context.Context, url string, opts *DialOptions) (*Client, error) {
	if opts == nil || opts.Token == nil {
		return nil, errors.New("client: DialOptions.Token is required")
	}
	o := opts.withDefaults()
	switch o.Integrity {
	case IntegrityOff, IntegrityHMAC:
	case IntegrityPop:
		if o.PopKey == nil {
			return nil, errors.New("client: pop integrity needs DialOptions.PopKey")
		}
	default:
		return nil, fmt.Errorf("client: unknown integrity mode %q", o.Integrity)
	}
	e2e, err := newE2E(o.Encryption)
	if err != nil {
		return nil, err
	}
	c := &Client{
		url: url, o: o, log: o.Logger,
		runEnd: make(chan struct{}),
		events: make(chan func(), o.EventQueue), evStop: make(chan struct{}), evEnd: make(chan struct{}),
		subs: map[string]*Subscription{}, pending: map[int64]*pending{},
		first: make(chan error, 1),
	}
	c.e2e.Store(e2e)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.eventLoop()
	go c.run()
	select {
	case err := <-c.first:
		if err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("client: dial %s: %w", redact(url), ctx.Err())
	}
}

// Close ends the client: the connection is closed with 1000, pending
// requests fail with ErrClosed, nothing reconnects. Handlers already queued
// still run. Close waits for the connection loop and, unless called from a
// handler, for the event goroutine. Call it also after a terminal refusal
// (Err() != nil): it releases the event goroutine.
func (c *Client) Close() error {
	c.cancel()
	<-c.runEnd
	c.mu.Lock()
	if c.state != StateClosed {
		c.state = StateClosed
	}
	if c.closeErr == nil {
		c.closeErr = ErrClosed
	}
	c.mu.Unlock()
	c.stopOnce.Do(func() { close(c.evStop) })
	if !c.inHandler.Load() {
		<-c.evEnd
	}
	return nil
}

// Err returns why the client stopped (a terminal *HandshakeError or
// *CloseError, or ErrClosed), nil while it is running.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// State returns the current state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Welcome returns the welcome of the current (or last) connection.
func (c *Client) Welcome() Welcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.welcome
}

// eventLoop runs handlers one at a time, in the order they were queued.
func (c *Client) eventLoop() {
	defer close(c.evEnd)
	run := func(f func()) {
		c.inHandler.Store(true)
		defer c.inHandler.Store(false)
		defer func() {
			if r := recover(); r != nil {
				c.log.Error("client: event handler panicked", "panic", r)
			}
		}()
		f()
	}
	for {
		select {
		case f := <-c.events:
			run(f)
		case <-c.evStop:
			for {
				select {
				case f := <-c.events:
					run(f)
				default:
					return
				}
			}
		}
	}
}

// enqueue hands f to the event goroutine, waiting while the queue is full.
func (c *Client) enqueue(f func()) {
	select {
	case c.events <- f:
	case <-c.evStop:
	}
}

func (c *Client) emit(e Event) {
	if h := c.o.OnEvent; h != nil {
		c.enqueue(func() { h(e) })
	}
}

func (c *Client) setState(s State) {
	c.mu.Lock()
	if c.state != StateClosed {
		c.state = s
	}
	c.mu.Unlock()
}

// report answers Dial once.
func (c *Client) report(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.firstSet {
		c.firstSet = true
		c.first <- err
	}
}

// run is the connection loop: connect, serve, decide, wait, again.
func (c *Client) run() {
	defer close(c.runEnd)
	bo := &backoff{min: c.o.MinBackoff, max: c.o.MaxBackoff}
	for {
		if c.ctx.Err() != nil {
			c.stop(ErrClosed)
			return
		}
		c.setState(StateConnecting)
		c.emit(Event{Kind: EventConnecting})
		cn, err := c.connect(c.ctx)
		if err != nil {
			if c.ctx.Err() != nil {
				c.stop(ErrClosed)
				return
			}
			var he *HandshakeError
			if errors.As(err, &he) && he.Terminal() {
				c.stop(err)
				c.emit(Event{Kind: EventDisconnected, Code: 0, Reason: he.Code, Err: err})
				return
			}
			delay := bo.next()
			if he != nil && he.RetryAfter > delay {
				delay = he.RetryAfter
			}
			c.log.Debug("client: connect failed", "err", err, "retry_in", delay)
			c.emit(Event{Kind: EventDisconnected, Err: err, WillReconnect: true, Delay: delay})
			if !c.sleep(delay) {
				c.stop(ErrClosed)
				return
			}
			continue
		}
		bo.reset()
		c.activate(cn)
		c.report(nil)
		ce := c.serve(cn)
		c.mu.Lock()
		if c.cur == cn {
			c.cur = nil
		}
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			c.stop(ErrClosed)
			return
		}
		c.setState(StateDisconnected)
		delay, again := time.Duration(0), true
		switch ce.Code {
		case uint16(protocol.CloseGoingAway), uint16(protocol.CloseServiceRestart): // come back at once
		case uint16(protocol.CloseTokenExpired): // connect() asks the TokenFunc for a new one
		case uint16(protocol.CloseProtocolError), uint16(protocol.CloseUnsupportedData),
			uint16(protocol.CloseInvalidPayload), uint16(protocol.CloseMessageTooBig): // our bug: retrying would repeat it
			again = false
		default:
			delay = bo.next()
		}
		if !again {
			c.stop(ce)
		}
		c.emit(Event{Kind: EventDisconnected, Code: ce.Code, Reason: ce.Reason, Err: ce, WillReconnect: again, Delay: delay})
		if !again {
			return
		}
		if !c.sleep(delay) {
			c.stop(ErrClosed)
			return
		}
	}
}

// sleep waits d or until Close; false when closed.
func (c *Client) sleep(d time.Duration) bool {
	if d <= 0 {
		return c.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// stop ends the client for good: queued and pending requests fail with err.
func (c *Client) stop(err error) {
	c.mu.Lock()
	c.state = StateClosed
	if c.closeErr == nil {
		c.closeErr = err
	}
	fail := c.pending
	c.pending = map[int64]*pending{}
	c.queue = nil
	c.mu.Unlock()
	c.report(err)
	for _, p := range fail {
		p.done(reply{}, err)
	}
}

// activate makes cn the current connection: subscriptions are renewed first,
// then the queue is flushed oldest first, then new sends go straight out.
func (c *Client) activate(cn *conn) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	c.mu.Lock()
	c.welcome = cn.welcome
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	q := c.queue
	c.queue = nil
	c.mu.Unlock()
	for _, s := range subs {
		c.resubscribe(cn, s)
	}
	for _, m := range q {
		c.mu.Lock()
		p := c.pending[m.id]
		if p != nil {
			p.conn = cn
		}
		c.mu.Unlock()
		if m.id != 0 && p == nil {
			continue // its caller gave up
		}
		if err := cn.write(m.typ, m.msg); err != nil {
			c.log.Debug("client: flush failed", "err", err)
		}
	}
	c.mu.Lock()
	if !cn.lost { // closed while flushing: serve sees it at once
		c.cur = cn
	}
	if c.state != StateClosed {
		c.state = StateConnected
	}
	c.mu.Unlock()
	c.emit(Event{Kind: EventConnected, Welcome: &cn.welcome, ExpiresAt: msTime(cn.welcome.ExpiresAt)})
}

// serve waits for cn to end, refreshing the token in band before it expires.
func (c *Client) serve(cn *conn) *CloseError {
	skew := time.Duration(cn.welcome.ServerTime-cn.welcomeAt.UnixMilli()) * time.Millisecond
	exp := cn.welcome.ExpiresAt
	var timer *time.Timer
	var tc <-chan time.Time
	arm := func() {
		if timer != nil {
			timer.Stop()
			tc = nil
		}
		if exp <= 0 {
			return
		}
		serverNow := time.Now().Add(skew)
		left := msTime(exp).Sub(serverNow)
		lead := min(30*time.Second, left/3)
		timer = time.NewTimer(max(left-lead, 0))
		tc = timer.C
	}
	arm()
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-cn.closed:
			return cn.closeErr()
		case <-c.ctx.Done():
			_ = cn.tc.WriteClose(1000, "")
			t := time.NewTimer(5 * time.Second)
			select {
			case <-cn.closed:
			case <-t.C:
				_ = cn.tc.Close()
				<-cn.closed
			}
			t.Stop()
			return cn.closeErr()
		case <-tc:
			tc = nil
			newExp, err := c.refresh(cn)
			if err != nil {
				c.emit(Event{Kind: EventError, Err: fmt.Errorf("client: token refresh: %w", err)})
				// Try again halfway to expiry; at expiry the server closes with
				// 4001 and the reconnect fetches a new token anyway.
				if left := msTime(exp).Sub(time.Now().Add(skew)); left > time.Second {
					timer = time.NewTimer(left / 2)
					tc = timer.C
				}
				continue
			}
			exp = newExp
			c.emit(Event{Kind: EventRefreshed, ExpiresAt: msTime(exp)})
			arm()
		}
	}
}

func (c *Client) refresh(cn *conn) (int64, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.o.RequestTimeout)
	defer cancel()
	tok, err := c.o.Token(ctx)
	if err != nil {
		return 0, err
	}
	r, err := c.request(ctx, "refresh", map[string]any{"token": tok})
	if err != nil {
		return 0, err
	}
	if r.Type != "refreshed" || r.ExpiresAt <= 0 {
		return 0, fmt.Errorf("client: unexpected refresh reply %q", r.Type)
	}
	return r.ExpiresAt, nil
}

func msTime(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// send writes msg now or queues it while disconnected. id names its pending
// entry (0: none).
func (c *Client) send(typ string, msg []byte, id int64) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	c.mu.Lock()
	if c.closeErr != nil || c.ctx.Err() != nil {
		c.mu.Unlock()
		return ErrClosed
	}
	cn := c.cur
	if cn == nil {
		if len(c.queue) >= c.o.QueueSize {
			c.mu.Unlock()
			return ErrQueueFull
		}
		c.queue = append(c.queue, queued{id: id, typ: typ, msg: msg})
		c.mu.Unlock()
		return nil
	}
	if p := c.pending[id]; p != nil {
		p.conn = cn
	}
	c.mu.Unlock()
	return cn.write(typ, msg)
}

// request sends {"type":typ,"id":…, fields…} and waits for the reply with its
// ref. Error replies come back as *ServerError.
func (c *Client) request(ctx context.Context, typ string, fields map[string]any) (reply, error) {
	if err := ctx.Err(); err != nil {
		return reply{}, ctxError(err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.o.RequestTimeout)
		defer cancel()
	}
	ch := make(chan struct {
		r   reply
		err error
	}, 1)
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.pending[id] = &pending{done: func(r reply, err error) {
		ch <- struct {
			r   reply
			err error
		}{r, err}
	}}
	c.mu.Unlock()
	msg, err := encodeRequest(typ, id, fields)
	if err == nil {
		err = c.send(typ, msg, id)
	}
	if err != nil {
		c.forget(id)
		return reply{}, err
	}
	select {
	case res := <-ch:
		if res.err != nil {
			return reply{}, res.err
		}
		if res.r.Type == "error" {
			return res.r, res.r.serverError()
		}
		return res.r, nil
	case <-ctx.Done():
		c.forget(id)
		return reply{}, ctxError(ctx.Err())
	}
}

// forget drops a pending request and, if it is still queued, its message.
func (c *Client) forget(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, id)
	for i, q := range c.queue {
		if q.id == id {
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			break
		}
	}
}

func encodeRequest(typ string, id int64, fields map[string]any) ([]byte, error) {
	m := make(map[string]any, len(fields)+2)
	for k, v := range fields {
		m[k] = v
	}
	m["type"] = typ
	if id != 0 {
		m["id"] = id
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("client: encode %s: %w", typ, err)
	}
	return b, nil
}

// resolve hands a reply to its pending request; reports whether one waited.
func (c *Client) resolve(cn *conn, r reply) bool {
	id, err := strconv.ParseInt(string(r.Ref), 10, 64)
	if err != nil {
		return false
	}
	c.mu.Lock()
	p := c.pending[id]
	if p != nil && p.conn == cn {
		delete(c.pending, id)
	} else {
		p = nil
	}
	c.mu.Unlock()
	if p == nil {
		return false
	}
	p.done(r, nil)
	return true
}

// connLost fails the requests sent on cn: their replies can never come.
func (c *Client) connLost(cn *conn) {
	c.mu.Lock()
	// From now on sends queue instead of writing to a dead socket.
	cn.lost = true
	if c.cur == cn {
		c.cur = nil
	}
	var fail []*pending
	for id, p := range c.pending {
		if p.conn == cn {
			fail = append(fail, p)
			delete(c.pending, id)
		}
	}
	c.mu.Unlock()
	for _, p := range fail {
		p.done(reply{}, ErrDisconnected)
	}
}

// Ping asks the server for a pong: a cheap round trip.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.request(ctx, "ping", nil)
	return err
}

// Publish publishes payload (any JSON value) to channel and returns its
// position once the server acknowledged it.
func (c *Client) Publish(ctx context.Context, channel string, payload any) (Position, error) {
	payload, err := c.sealPayload(channel, payload)
	if err != nil {
		return Position{}, err
	}
	r, err := c.request(ctx, "publish", map[string]any{"channel": channel, "payload": payload})
	if err != nil {
		return Position{}, err
	}
	var p Position
	if r.Offset != nil {
		p.Offset = *r.Offset
	}
	p.Epoch = r.Epoch
	return p, nil
}

// Command calls the application backend (docs/protocol.md, command) and
// returns its JSON result.
func (c *Client) Command(ctx context.Context, name string, payload any) (json.RawMessage, error) {
	r, err := c.request(ctx, "command", map[string]any{"name": name, "payload": rawOrValue(payload)})
	if err != nil {
		return nil, err
	}
	return r.Result, nil
}

// Request sends a request of any type (fields become its members, "id" is
// added) and returns the raw reply, for message types the client has no
// method for.
func (c *Client) Request(ctx context.Context, typ string, fields map[string]any) (json.RawMessage, error) {
	r, err := c.request(ctx, typ, fields)
	if err != nil {
		return nil, err
	}
	return r.raw, nil
}

// Send sends a message that expects no reply (e.g. {"type":"chat",…}),
// queued while disconnected.
func (c *Client) Send(ctx context.Context, typ string, fields map[string]any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	msg, err := encodeRequest(typ, 0, fields)
	if err != nil {
		return err
	}
	return c.send(typ, msg, 0)
}

func rawOrValue(v any) any {
	if b, ok := v.([]byte); ok {
		return json.RawMessage(b)
	}
	return v
}

// handle dispatches one server message (reader goroutine).
func (c *Client) handle(cn *conn, data []byte) {
	var r reply
	if err := json.Unmarshal(data, &r); err != nil {
		c.emit(Event{Kind: EventError, Err: fmt.Errorf("client: server sent a malformed message: %w", err)})
		return
	}
	r.raw = data
	if r.Type == "signed" {
		body, err := cn.openSigned(data)
		if err != nil {
			c.emit(Event{Kind: EventError, Err: fmt.Errorf("client: dropped a server-signed message: %w", err)})
			return
		}
		c.handle(cn, body)
		return
	}
	switch r.Type {
	case "message":
		var m Message
		if err := json.Unmarshal(data, &m); err == nil {
			if err := c.openPayload(&m); err != nil {
				c.emit(Event{Kind: EventError, Err: fmt.Errorf("client: dropped a message: %w", err)})
				return
			}
			c.deliver(m)
		}
		return
	case "joined", "left":
		var p PresenceEvent
		if err := json.Unmarshal(data, &p); err == nil {
			c.presenceEvent(r.Type, p)
		}
		return
	}
	if len(r.Ref) > 0 && c.resolve(cn, r) {
		return
	}
	switch r.Type {
	case "recovery_failed":
		c.recoveryFailed(r)
	case "error":
		c.emit(Event{Kind: EventError, Err: r.serverError()})
	}
}
