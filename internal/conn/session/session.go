// Package session owns one WebSocket connection from the 101 to its end: the welcome,
// keepalive pings and their deadline, the idle timeout, token expiry and refresh, the
// message pipeline, dispatch to the router, the bounded outbox and the close. Every
// way a connection ends runs through one close path, which releases the connection's
// quota lease exactly once.
//
// An idle connection keeps its identity's claims packed as JSON (claims.go) and
// decodes them when a subscribe, publish or hook asks. The small encoder and
// parser there are written by hand, not encoding/json, for two measured
// reasons: reflection made packing cost ~5.6 µs per handshake, and
// encoding/json's recursive decode grew the stack of every goroutine-per-
// connection reader at its first subscribe (+17.5 KiB RSS per connection with
// the gws reader). They read only what the encoder wrote (FuzzIdentityPack
// checks the round trip); anything else falls back to encoding/json.
//
// The sessions' timers run from one hashed timer wheel (wheel.go), not a
// runtime timer each: written here because the standard library has none and
// a time.Timer with its callback was ≈ 128 B of every idle connection.
package session

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/conn/outbox"
	"github.com/wsgate/wsgate/internal/conn/pipeline"
	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/state/limit"
	"github.com/wsgate/wsgate/internal/state/quota"
)

// Options are the per-connection timings and bounds.
type Options struct {
	// Route names the endpoint the sessions serve (Session.Route): the same
	// for every session made with these Options.
	Route        string
	PingInterval time.Duration
	PongTimeout  time.Duration
	Idle         time.Duration
	Outbox       outbox.Options
	// Welcome adds fields to the welcome message (limits the client should know).
	WelcomeLimits map[string]any
	// NoWelcome skips the welcome message (gateway routes: the upstream speaks first).
	NoWelcome bool
}

// Router takes the messages the pipeline accepted and that the session does not
// handle itself (ping, refresh).
type Router interface {
	Handle(ctx context.Context, s *Session, m pipeline.Message)
	// Leave is called once when the session ends, before its lease is released.
	Leave(s *Session)
}

// RawRouter receives every message unparsed (gateway routes in raw mode).
type RawRouter interface {
	HandleRaw(ctx context.Context, s *Session, op transport.Opcode, data []byte)
}

// Striker counts violations; it reports whether the subject is now banned.
type Striker interface {
	Record(ctx context.Context, ip, user, reason string) (banned bool, err error)
}

// Observer is told what happens, for metrics and audit. Implementations must be cheap.
type Observer interface {
	Message(s *Session, typ string, data []byte, rej *protocol.Error, took time.Duration)
	Sent(s *Session, size int)
	Strike(s *Session, reason string, banned bool)
	Closed(s *Session, code uint16, reason string)
}

// Deps are what a session uses but does not own.
type Deps struct {
	Pipeline *pipeline.Pipeline // nil for raw routes
	// LivePipeline, when set, is read for every message instead of Pipeline, so a
	// configuration reload reaches connections that are already open.
	LivePipeline *atomic.Pointer[pipeline.Pipeline]
	Router       Router
	Raw          RawRouter // set for raw routes instead of Pipeline
	Strikes      Striker
	// Refresh verifies a refresh token; the subject must equal the session's.
	Refresh  func(ctx context.Context, token string) (auth.Identity, error)
	Observer Observer
	Log      *slog.Logger
	Registry *Registry
}

// Stats are a session's counters, read by the admin API.
type Stats struct {
	MessagesIn, BytesIn, MessagesOut, BytesOut uint64
}

// Session is one connection. Its exported methods are safe for concurrent use.
type Session struct {
	// The connection id and the per-IP key for limits and strikes
	// (Params.IPKey) are state.ConnID and state.IP, kept once.
	ip       netip.Addr
	started  int64 // mono nanos (Started rebuilds the wall time)
	identity atomic.Pointer[identity]

	conn *transport.Conn
	out  *outbox.Queue
	// opts and deps are shared by the sessions of an endpoint (New's caller
	// keeps them unchanged): a copy each would be 160 bytes per connection.
	opts  *Options
	deps  *Deps
	lease *quota.Lease
	state pipeline.ConnState

	// rare is what few open sessions need, made on first use (guarded by
	// mu): the context's channel and derived cancels, the close wsgate
	// chose, Done's channel.
	rare *sessionRare

	msgsIn, bytesIn, msgsOut, bytesOut atomic.Uint64
	// The keepalive and idle times are on the monotonic clock (mono), so
	// that a step of the wall clock neither delays nor hurries them; the
	// token's expiry is a wall-clock time by nature.
	lastMsg   atomic.Int64 // mono nanos of the last client message
	pingSent  atomic.Int64 // mono nanos of the unanswered ping, 0 if none
	lastPing  atomic.Int64 // mono nanos
	pongAt    atomic.Int64 // mono nanos
	expiresAt atomic.Int64 // unix nanos when the token expires, 0 if never

	mu sync.Mutex // guards closing, finished and rare, and orders the timer's changes
	// The session's one timer: keepalive ping, pong deadline, idle timeout
	// and token expiry all fire through it (tick), at the earliest of their
	// times, from the process's timer wheel (wheel.go). wslot (slot+1, 0:
	// not in the wheel) and widx are the wheel's, guarded by its lock.
	wslot, widx int32
	wg          sync.WaitGroup // async closes started by this session

	// The small fields, together so that they share one word.
	flags    atomic.Uint32 // flagClosed, flagCtxDone: for lock-free reads
	closing  bool
	finished bool             // the session has ended (Done returns a closed channel)
	begun    bool             // Start ran; owner-only, before Serve
	msgOp    transport.Opcode // opcode of the message being handled; reader-only
}

// Bits of Session.flags.
const (
	flagClosed  = 1 << iota // mirrors closing
	flagCtxDone             // the session's context is cancelled (context.go)
)

// sessionRare is the part of a session made when first needed: an open,
// quiet session has none of it (every connection has a Session: it is
// held to its size class, see TestSessionSizeClass).
type sessionRare struct {
	ctx   ctxState
	chose *closeChoice  // how wsgate chose to close the session; nil until it did
	ended chan struct{} // made by the first Done, which few sessions see
}

// chose is the close wsgate chose, nil if none; s.mu is held.
func (s *Session) chose() *closeChoice {
	if s.rare == nil {
		return nil
	}
	return s.rare.chose
}

// rareLocked returns s.rare, making it; s.mu is held.
func (s *Session) rareLocked() *sessionRare {
	if s.rare == nil {
		s.rare = &sessionRare{}
	}
	return s.rare
}

// closeChoice is the close wsgate sent: made once, when it closes, so that
// an open session does not carry it.
type closeChoice struct {
	code   protocol.CloseCode
	text   string
	reason protocol.CloseReason // 0 if wsgate did not choose a reason (CloseWith)
}

// NewID returns a random connection id (16 bytes, base64url).
func NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Params describe the admitted connection.
type Params struct {
	ID       string
	IP       netip.Addr
	Identity auth.Identity
	Lease    *quota.Lease
	Tier     string
	// IPKey is the client's per-IP key (limit.IPPrefixes.Key: its /64 for IPv6 by
	// default), used for the IP message/byte budgets and IP strikes. Empty: the
	// default prefixes applied to IP.
	IPKey string
	// Integrity is the connection's message-integrity state from the handshake,
	// for the pipeline's Verifier; nil when it has none.
	Integrity *pipeline.Integrity
}

// New prepares a session; Attach gives it the upgraded connection. opts and
// deps are kept, not copied: they must not change while the session lives, and
// many sessions may share them.
func New(p Params, opts *Options, deps *Deps) *Session {
	s := &Session{
		ip: p.IP, started: mono(time.Now()),
		opts: opts, deps: deps, lease: p.Lease,
	}
	id := p.Identity
	s.identity.Store(newIdentity(id))
	if p.IPKey == "" {
		p.IPKey = limit.IPPrefixes{}.Key(p.IP)
	}
	s.state = pipeline.ConnState{ConnID: p.ID, User: id.Subject, IP: p.IPKey, Tier: p.Tier, Integrity: p.Integrity}
	return s
}

// Attach binds the upgraded connection. It must be called before Serve.
func (s *Session) Attach(c *transport.Conn) {
	s.conn = c
	// Broadcasts to an idle connection are written by the broadcaster
	// without blocking it (no drainer goroutine per delivery) when the
	// transport can write it directly.
	s.out = outbox.NewWriter(s.opts.Outbox, (*sessionOut)(s), c.DirectWrites())
}

// sessionOut is the session as its outbox's Writer: the same memory with a
// method set of its own, so that the outbox holds the session itself and no
// closures (≈ 80 B per connection).
type sessionOut Session

func (o *sessionOut) WriteOp(op transport.Opcode, b []byte) error {
	s := (*Session)(o)
	if err := s.conn.WriteMessage(op, b); err != nil {
		return err
	}
	s.sent(len(b))
	return nil
}

// WriteOps is outbox.BatchWriter: a queue that built up drains in batches.
func (o *sessionOut) WriteOps(op transport.Opcode, bs [][]byte) (int, error) {
	s := (*Session)(o)
	n, err := s.conn.WriteMessages(op, bs)
	for _, b := range bs[:n] {
		s.sent(len(b))
	}
	return n, err
}

// WriteFailed: the write failed (peer gone or write deadline passed):
// nothing more can be delivered, so drop the socket now rather than wait for
// the reader. A connection that is already closing (the transport sent a
// close frame) is left to finish its closing handshake: dropping it could
// cut the close frame off, and the code it carries is the one to report.
func (o *sessionOut) WriteFailed(err error) {
	if !errors.Is(err, transport.ErrClosed) {
		_ = (*Session)(o).conn.Close()
	}
}

func (o *sessionOut) TryWrite(op transport.Opcode, b []byte) (transport.TryResult, error) {
	s := (*Session)(o)
	res, err := s.conn.TryWriteMessage(op, b)
	if res != transport.TryBlocked {
		s.sent(len(b))
	}
	return res, err
}

func (o *sessionOut) FlushTail() error { return (*Session)(o).conn.Flush() }

// sent counts one message written (or handed whole to the socket).
func (s *Session) sent(n int) {
	s.msgsOut.Add(1)
	s.bytesOut.Add(uint64(n))
	if s.deps.Observer != nil {
		s.deps.Observer.Sent(s, n)
	}
}

// Accessors.
func (s *Session) ID() string     { return s.state.ConnID }
func (s *Session) IP() netip.Addr { return s.ip }
func (s *Session) IPKey() string  { return s.state.IP }
func (s *Session) Route() string  { return s.opts.Route }

func (s *Session) Identity() auth.Identity        { return s.identity.Load().full() }
func (s *Session) User() string                   { return s.identity.Load().id.Subject }
func (s *Session) Claims() map[string]any         { return s.identity.Load().claims() }
func (s *Session) Conn() *transport.Conn          { return s.conn }
func (s *Session) ConnState() *pipeline.ConnState { return &s.state }

// Subprotocol is the negotiated subprotocol, "" for none (and before Attach).
func (s *Session) Subprotocol() string {
	if s.conn == nil {
		return ""
	}
	return s.conn.Subprotocol()
}

// Started is when the session was made (on the monotonic clock: durations
// since it are right across wall-clock steps).
func (s *Session) Started() time.Time {
	now := time.Now()
	return now.Add(-time.Duration(mono(now) - s.started))
}

// ConnID is the connection id (for routers that name it so).
func (s *Session) ConnID() string { return s.state.ConnID }

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	return Stats{MessagesIn: s.msgsIn.Load(), BytesIn: s.bytesIn.Load(), MessagesOut: s.msgsOut.Load(), BytesOut: s.bytesOut.Load()}
}

// Pending returns what waits in the outbox (gateway backpressure reads it).
func (s *Session) Pending() (msgs, bytes int) { return s.out.Len() }

// ErrClosed is returned by Send after the session started closing.
var ErrClosed = errors.New("session closed")

// Send queues b for the client without blocking. A full queue closes the session as
// a slow consumer: one client that stops reading never delays the others and never
// grows server memory. b is shared and must not be modified afterwards.
func (s *Session) Send(b []byte) error { return s.queued(s.out.Push(b)) }

// SendOp is Send for a message of either opcode (binary needs the transport's
// AllowBinary, or the write fails and the connection closes).
func (s *Session) SendOp(op transport.Opcode, b []byte) error { return s.queued(s.out.PushOp(op, b)) }

// Relay queues a message of either opcode for the client, in order with
// everything else sent to it. It is for a goroutine that serves this one
// connection only (the upstream leg of a gateway connection): when nothing is
// queued and nothing is being written it writes at once on that goroutine, which
// may block it for one write (backpressure on that upstream only); otherwise the
// message is batched behind what is queued. Errors are Send's.
func (s *Session) Relay(op transport.Opcode, b []byte) error {
	return s.queued(s.out.PushOrWriteOp(op, b))
}

// MessageOpcode is the opcode of the client message being handled. It is valid
// only on the reader's goroutine, during Router.Handle.
func (s *Session) MessageOpcode() transport.Opcode { return s.msgOp }

// Reply sends b to the client in answer to one of its own messages (a pong, an
// error reply, the welcome). It must be called only by the connection's owner,
// the goroutine running Start or Serve (the session itself, or a Router's
// Handle): when nothing is queued and
// nothing is being written it writes b at once on that goroutine, sparing the
// hand-off to a writer goroutine, which may block it for one write (bounded by the
// write timeout; it is only this connection's reader that waits). Otherwise b is
// queued behind what is there, in order. Messages for this client from anywhere
// else (broadcasts, the upstream of a gateway route) must use Send, which never
// blocks. Errors are Send's.
func (s *Session) Reply(b []byte) error { return s.queued(s.out.PushOrWrite(b)) }

// queued passes on the outbox's answer to Send, SendOp, Relay, Reply or a
// pong; a full queue closes the session as a slow consumer.
func (s *Session) queued(err error) error {
	if errors.Is(err, outbox.ErrFull) {
		s.CloseAsync(protocol.ReasonSlowConsumer)
	}
	return err
}

// Start registers the session, sends the welcome and starts the timers; Serve
// calls it unless the owner already has. An owner that serves the session on a
// goroutine of its own should call Start first, on the goroutine that accepted
// the connection: the goroutine running Serve keeps its stack for the whole life
// of the connection, and encoding the welcome would grow it (typically from 4 to
// 8 KiB) for nothing. Start must be called at most once, before Serve, by the
// owner (the go statement that starts Serve orders the two).
func (s *Session) Start() {
	if s.begun {
		return
	}
	s.begun = true
	if s.deps.Registry != nil {
		s.deps.Registry.add(s)
	}
	now := mono(time.Now())
	s.lastMsg.Store(now)
	s.lastPing.Store(now)
	if !s.opts.NoWelcome {
		s.sendWelcome()
	}
	s.mu.Lock()
	s.armExpiryLocked(s.identity.Load().id.ExpiresAt)
	s.mu.Unlock()
}

// Serve starts the session if Start was not called, then reads until the
// connection ends. It runs on the goroutine that owns the connection (the
// session's reader: Reply and Router.Handle run on it) and returns only after
// everything the session started has stopped.
func (s *Session) Serve() {
	s.Start()
	s.conn.Serve() // returns when the connection is gone; OnClose ran
	s.end()
}

// ServeDetached is Serve for an owner that does not wait: with the parked
// transport reader (transport.ReaderParked) it returns once the connection is
// idle, and the transport's workers read it from then on (Router.Handle and
// Reply run on the worker that reads it, one message at a time, as on Serve's
// goroutine). done is called exactly once, after everything the session
// started has stopped, on the goroutine that ended it; it must not block.
// With other readers it is Serve followed by done.
func (s *Session) ServeDetached(done func()) {
	s.Start()
	s.conn.ServeDetached(func() {
		defer done()
		s.end()
	})
}

// end is the session's cleanup once the connection is gone (OnClose ran).
func (s *Session) end() {
	s.mu.Lock()
	s.closing = true
	s.flags.Or(flagClosed)
	timers.cancel(s)
	s.mu.Unlock()
	s.cancelContext()
	s.out.Close()
	s.wg.Wait()
	if s.deps.Router != nil {
		s.deps.Router.Leave(s)
	}
	if s.deps.Registry != nil {
		s.deps.Registry.remove(s)
	}
	if s.lease != nil {
		s.lease.Release()
	}
	s.mu.Lock()
	s.finished = true
	var ended chan struct{}
	if s.rare != nil {
		ended = s.rare.ended
	}
	s.mu.Unlock()
	if ended != nil {
		close(ended)
	}
}

// closedChan is Done's answer once the session has ended.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Done is closed when the session has fully ended.
func (s *Session) Done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rare == nil || s.rare.ended == nil {
		if s.finished {
			return closedChan
		}
		s.rareLocked().ended = make(chan struct{})
	}
	return s.rare.ended
}

// log is the session's logger.
func (s *Session) log() *slog.Logger {
	if s.deps.Log != nil {
		return s.deps.Log
	}
	return slog.Default()
}

func (s *Session) sendWelcome() {
	id := s.identity.Load().id
	w := map[string]any{
		"type":        protocol.TypeWelcome,
		"conn_id":     s.state.ConnID,
		"user":        id.Subject,
		"server_time": time.Now().UnixMilli(),
	}
	if sp := s.Subprotocol(); sp != "" {
		w["protocol"] = sp
	}
	if !id.ExpiresAt.IsZero() {
		w["expires_at"] = id.ExpiresAt.UnixMilli()
	}
	if s.opts.WelcomeLimits != nil {
		w["limits"] = s.opts.WelcomeLimits
	}
	b, _ := json.Marshal(w)
	_ = s.Reply(b)
}

// Close ends the session with reason: a close frame with the reason's code, then
// the socket. It may block up to the write timeout; safe to call many times.
func (s *Session) Close(reason protocol.CloseReason) {
	// A slow consumer's queue is full because it does not read: flushing would
	// only wait out the timeout.
	s.closeWith(reason, reason.Code(), reason.Text(), reason != protocol.ReasonSlowConsumer && reason != protocol.ReasonKeepalive)
}

// CloseWith ends the session with an explicit code (gateway mode propagates codes).
// What is already queued for the client (an error reply explaining the close, say)
// is flushed first, for a bounded time, so the close frame does not overtake it.
func (s *Session) CloseWith(code protocol.CloseCode, text string) {
	s.closeWith(0, code, text, true)
}

// CloseReason is the reason wsgate closed the session for, or 0 when it did not
// pick one (the peer closed, the connection broke, or CloseWith sent an explicit
// code). Observers use it instead of comparing close texts.
func (s *Session) CloseReason() protocol.CloseReason {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rare == nil || s.rare.chose == nil {
		return 0
	}
	return s.rare.chose.reason
}

// flushTimeout bounds how long a close waits for queued messages to be written.
const flushTimeout = 2 * time.Second

func (s *Session) closeWith(reason protocol.CloseReason, code protocol.CloseCode, text string, flush bool) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	s.flags.Or(flagClosed)
	s.rareLocked().chose = &closeChoice{code: code, text: text, reason: reason}
	s.mu.Unlock()
	if flush {
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		_ = s.out.Wait(ctx)
		cancel()
	}
	s.out.Close()
	_ = s.conn.WriteClose(uint16(code), text)
}

// CloseAsync starts Close without blocking the caller (broadcasters, timers). The
// goroutine belongs to the session: Serve waits for it.
func (s *Session) CloseAsync(reason protocol.CloseReason) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.Close(reason)
	}()
}

// isClosing is read for every message: an atomic mirror of closing spares the
// lock.
func (s *Session) isClosing() bool { return s.flags.Load()&flagClosed != 0 }

// --- timers ---

// maxTick is nextTick's answer when nothing is due, ever.
const maxTick = time.Duration(1<<63 - 1)

// monoEpoch is the zero of mono.
var monoEpoch = time.Now()

// mono is t in nanoseconds since monoEpoch on the monotonic clock (Sub uses
// it when both times carry it, as time.Now's do); always > 0 for a time
// taken after package initialisation.
func mono(t time.Time) int64 { return int64(t.Sub(monoEpoch)) + 1 }

func (s *Session) nextTick(now time.Time) time.Duration {
	next := maxTick
	if exp := s.expiresAt.Load(); exp != 0 {
		next = min(next, time.Duration(exp-now.UnixNano()))
	}
	n := mono(now)
	if s.opts.Idle > 0 {
		next = min(next, time.Duration(s.lastMsg.Load()+int64(s.opts.Idle)-n))
	}
	if s.opts.PingInterval > 0 {
		if ps := s.pingSent.Load(); ps != 0 {
			next = min(next, time.Duration(ps+int64(s.opts.PongTimeout)-n))
		} else {
			next = min(next, time.Duration(s.lastPing.Load()+int64(s.opts.PingInterval)-n))
		}
	}
	return max(next, 10*time.Millisecond)
}

func (s *Session) tick() {
	now := time.Now()
	if exp := s.expiresAt.Load(); exp != 0 && now.UnixNano() >= exp {
		s.Close(protocol.ReasonTokenExpired)
		return
	}
	n := mono(now)
	if s.opts.Idle > 0 && n-s.lastMsg.Load() >= int64(s.opts.Idle) {
		s.Close(protocol.ReasonIdle)
		return
	}
	if s.opts.PingInterval > 0 {
		if ps := s.pingSent.Load(); ps != 0 {
			if s.pongAt.Load() >= ps {
				s.pingSent.Store(0)
			} else if n-ps >= int64(s.opts.PongTimeout) {
				s.Close(protocol.ReasonKeepalive)
				_ = s.conn.Close() // the peer is not answering: do not wait for its close frame
				return
			}
		}
		if s.pingSent.Load() == 0 && n-s.lastPing.Load() >= int64(s.opts.PingInterval) {
			s.lastPing.Store(n)
			s.pingSent.Store(n)
			if err := s.conn.WritePing(nil); err != nil {
				_ = s.conn.Close()
				return
			}
		}
	}
	s.mu.Lock()
	if !s.closing {
		s.rearmLocked()
	}
	s.mu.Unlock()
}

// rearmLocked puts the session in the timer wheel at its next due time, or
// out of it when nothing is due ever. Called with mu held.
func (s *Session) rearmLocked() {
	now := time.Now()
	d := s.nextTick(now)
	if d >= maxTick/2 { // never (or centuries away)
		timers.cancel(s)
		return
	}
	timers.schedule(s, d)
}

// armExpiryLocked sets the token expiry (zero: none) and (re)arms the timer
// for the earliest of expiry, keepalive and idle times. Called with mu held.
func (s *Session) armExpiryLocked(exp time.Time) {
	if exp.IsZero() {
		s.expiresAt.Store(0)
	} else {
		s.expiresAt.Store(exp.UnixNano())
	}
	if s.opts.PingInterval <= 0 && s.opts.Idle <= 0 && exp.IsZero() {
		timers.cancel(s) // nothing to time (any more)
		return
	}
	s.rearmLocked()
}

// --- transport.Handler ---

// OnMessage runs the pipeline on one client message and dispatches it.
func (s *Session) OnMessage(_ *transport.Conn, op transport.Opcode, data []byte) {
	if s.isClosing() {
		return
	}
	// One clock read per message serves the idle timer, the pipeline timing
	// (time.Since reads only the cheaper monotonic clock) and the pong.
	start := time.Now()
	s.lastMsg.Store(mono(start))
	s.msgsIn.Add(1)
	s.bytesIn.Add(uint64(len(data)))
	s.msgOp = op
	if s.deps.Raw != nil {
		s.deps.Raw.HandleRaw(s.Context(), s, op, data)
		return
	}
	p := s.deps.Pipeline
	if s.deps.LivePipeline != nil {
		p = s.deps.LivePipeline.Load()
	}
	s.state.Now = start
	msg, rej := p.Process(s.Context(), &s.state, data)
	if s.deps.Observer != nil {
		s.deps.Observer.Message(s, msg.Type, data, rej, time.Since(start))
	}
	if rej != nil {
		s.Reject(msg.ID, rej)
		return
	}
	switch msg.Type {
	case protocol.TypePing:
		s.pong(msg, start)
	case protocol.TypeRefresh:
		s.refresh(msg)
	default:
		if s.deps.Router != nil {
			s.deps.Router.Handle(s.Context(), s, msg)
		}
	}
}

// Reject answers a refused message with an error reply or a close, and counts a
// strike when the refusal is one. Like Reply, it is for the goroutine running
// Serve (a Router's Handle).
func (s *Session) Reject(ref []byte, rej *protocol.Error) {
	if rej.Close != 0 {
		s.Close(rej.Close)
	} else {
		_ = s.Reply(pipeline.EncodeError(rej, ref))
	}
	if rej.Strike {
		s.Strike(rej.Code)
	}
}

// Strike records a violation; reaching the threshold bans and closes.
func (s *Session) Strike(reason string) {
	if s.deps.Strikes == nil {
		return
	}
	banned, err := s.deps.Strikes.Record(s.Context(), s.state.IP, s.User(), reason)
	if err != nil {
		s.log().Warn("strike not recorded", "conn_id", s.state.ConnID, "err", err)
	}
	if s.deps.Observer != nil {
		s.deps.Observer.Strike(s, reason, banned)
	}
	if banned {
		s.CloseAsync(protocol.ReasonBanned)
	}
}

// maxPongBuf bounds the pong buffers pooled between pings (a long message id
// makes a one-off larger pong, not a larger buffer kept).
const maxPongBuf = 128

// pongBufs are pong buffers that the outbox is done with: pooled, not kept by
// each session that was pinged once.
var pongBufs = sync.Pool{New: func() any { b := make([]byte, 0, maxPongBuf); return &b }}

func (s *Session) pong(m pipeline.Message, now time.Time) {
	bp := pongBufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"type":"pong","timestamp":`...)
	b = strconv.AppendInt(b, now.UnixMilli(), 10)
	if m.ID != nil {
		b = append(b, `,"ref":`...)
		b = append(b, m.ID...)
	}
	b = append(b, '}')
	// Written inline (the usual case) the buffer is free again: a next pong
	// reuses it instead of allocating. Queued, it belongs to the queue.
	reusable, err := s.out.PushOrWriteReuse(b)
	if reusable && cap(b) <= maxPongBuf {
		*bp = b[:0]
		pongBufs.Put(bp)
	}
	_ = s.queued(err) // a pong that cannot be queued needs nothing more
}

func (s *Session) refresh(m pipeline.Message) {
	var req struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(m.Raw, &req); err != nil || req.Token == "" || s.deps.Refresh == nil {
		s.Reject(m.ID, &protocol.Error{Code: protocol.CodeRefreshFailed, Message: "refresh needs a token", Strike: true})
		return
	}
	id, err := s.deps.Refresh(s.Context(), req.Token)
	if err != nil {
		s.log().Info("refresh rejected", "conn_id", s.state.ConnID, "user", s.User(), "reason", auth.Reason(err))
		s.Reject(m.ID, &protocol.Error{Code: protocol.CodeRefreshFailed, Message: "token not valid", Strike: true})
		return
	}
	cur := s.identity.Load().id // its subject and certificate, not its claims
	if id.Subject != cur.Subject {
		s.log().Warn("refresh for another subject", "conn_id", s.state.ConnID, "user", cur.Subject)
		s.Reject(m.ID, &protocol.Error{Code: protocol.CodeRefreshFailed, Message: "token is for another subject", Strike: true})
		return
	}
	if leaf := s.peerCertificate(); leaf != nil {
		// The handshake bound the token to this connection's client certificate
		// (cnf thumbprint, lifetime capped at the certificate's); a refresh token
		// must pass the same binding, or refreshing would undo it.
		bound, err := auth.BindCert(id, leaf)
		if err != nil {
			s.log().Warn("refresh token not bound to the connection's certificate", "conn_id", s.state.ConnID, "user", cur.Subject)
			s.Reject(m.ID, &protocol.Error{Code: protocol.CodeRefreshFailed, Message: "token not valid", Strike: true})
			return
		}
		bound.Source = id.Source
		id = bound
	}
	id.CertSubject = cur.CertSubject
	if cur.Source == auth.IdentitySourceJWTMTLS {
		id.Source = cur.Source
	}
	s.identity.Store(newIdentity(id))
	s.mu.Lock()
	if !s.closing {
		s.armExpiryLocked(id.ExpiresAt)
	}
	s.mu.Unlock()
	b := []byte(`{"type":"refreshed","expires_at":` + strconv.FormatInt(id.ExpiresAt.UnixMilli(), 10))
	if m.ID != nil {
		b = append(append(b, `,"ref":`...), m.ID...)
	}
	_ = s.Reply(append(b, '}'))
}

// peerCertificate returns the verified client certificate of the connection,
// nil without mTLS.
func (s *Session) peerCertificate() *x509.Certificate {
	if s.conn == nil || s.identity.Load().id.CertSubject == "" {
		return nil
	}
	tc, ok := s.conn.NetConn().(*tls.Conn)
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return nil
	}
	return st.VerifiedChains[0][0]
}

// OnPing: the transport already answered with a pong.
func (s *Session) OnPing(*transport.Conn, []byte) {}

// OnPong records the keepalive answer.
func (s *Session) OnPong(*transport.Conn, []byte) { s.pongAt.Store(mono(time.Now())) }

// OnClose runs once when the read loop ends.
func (s *Session) OnClose(_ *transport.Conn, err error) {
	code, text := uint16(protocol.CloseAbnormal), ""
	s.mu.Lock()
	if ch := s.chose(); ch != nil && ch.code != 0 {
		code, text = uint16(ch.code), ch.text
	} else if c, ok := transport.CloseCode(err); ok {
		code = c
		var ce *transport.CloseError
		if errors.As(err, &ce) {
			text = ce.Reason
		}
	}
	s.closing = true
	s.flags.Or(flagClosed)
	s.mu.Unlock()
	if s.deps.Observer != nil {
		s.deps.Observer.Closed(s, code, text)
	}
}
