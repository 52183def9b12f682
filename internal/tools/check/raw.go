package check

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// The raw client speaks just enough WebSocket by hand for the probes the
// transport (rightly) refuses to send: a wrong version, a malformed Host,
// invalid UTF-8, a frame whose announced size is a lie, a request head
// dripped byte by byte. Everything it reads is bounded.

// rawReadLimit bounds the bytes one raw connection reads in total.
const rawReadLimit = 4 << 20

// rawMaxPayload bounds one frame's payload the raw client keeps.
const rawMaxPayload = 1 << 20

// limitedConn fails reads after a budget of bytes.
type limitedConn struct {
	net.Conn
	left int64
}

var errReadBudget = errors.New("read budget exhausted")

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errReadBudget
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.Conn.Read(p)
	l.left -= int64(n)
	return n, err
}

// rawConn is a hand-driven client connection.
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

func (r *rawConn) Close() error { return r.c.Close() }

// rawDial opens TCP (and TLS for wss://) from src.
func (e *env) rawDial(ctx context.Context, src netip.Addr) (*rawConn, error) {
	ctx, cancel := context.WithTimeout(ctx, e.o.Timeout)
	defer cancel()
	c, err := e.netDialer(src).DialContext(ctx, "tcp", e.hostPort())
	if err != nil {
		return nil, err
	}
	if e.target.Scheme == "wss" {
		cfg := e.tls.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = e.target.Hostname()
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("tls: %w", err)
		}
		c = tc
	}
	lc := &limitedConn{Conn: c, left: rawReadLimit}
	return &rawConn{c: lc, br: bufio.NewReaderSize(lc, 16<<10)}, nil
}

func (e *env) hostPort() string {
	p := e.target.Port()
	if p == "" {
		p = "80"
		if e.target.Scheme == "wss" {
			p = "443"
		}
	}
	return net.JoinHostPort(e.target.Hostname(), p)
}

// rawRequest describes a hand-made upgrade request.
type rawRequest struct {
	target  string // request target; "" is the URL's path and query
	host    string // Host header; "" is the URL's host
	version string // Sec-WebSocket-Version; "" is 13
	header  http.Header
	tok     string // credential sent as Options.TokenVia says; "" none
}

// head renders the request head.
func (e *env) head(rq rawRequest) []byte {
	u := *e.target
	h := e.baseHeader()
	var sp []string
	if rq.tok != "" {
		var raw string
		raw, h, sp = e.credential(&u, h, e.o.Subprotocols, rq.tok)
		if pu, err := u.Parse(raw); err == nil {
			u = *pu
		}
	} else {
		sp = e.o.Subprotocols
	}
	for k, v := range rq.header {
		h[k] = v
	}
	target := rq.target
	if target == "" {
		target = u.RequestURI()
	}
	host := rq.host
	if host == "" {
		host = u.Host
	}
	version := rq.version
	if version == "" {
		version = "13"
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", target, host)
	fmt.Fprintf(&b, "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n", base64.StdEncoding.EncodeToString(key[:]), version)
	if len(sp) > 0 && h.Get("Sec-WebSocket-Protocol") == "" {
		fmt.Fprintf(&b, "Sec-WebSocket-Protocol: %s\r\n", strings.Join(sp, ", "))
	}
	for k, vs := range h {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// rawAnswer is what came back to a raw upgrade.
type rawAnswer struct {
	conn   *rawConn // open on 101, nil otherwise
	status int
	header http.Header
	body   string
	err    error // no HTTP answer
}

func (a rawAnswer) describe() string {
	return describeAnswer(a.status == http.StatusSwitchingProtocols, a.status, a.body, a.err)
}

// rawUpgrade sends a hand-made upgrade request from src and reads the
// answer. On 101 the connection stays open in the answer; close it.
func (e *env) rawUpgrade(ctx context.Context, src netip.Addr, rq rawRequest) rawAnswer {
	rc, err := e.rawDial(ctx, src)
	if err != nil {
		return rawAnswer{err: err}
	}
	return rc.upgrade(e, e.head(rq))
}

// upgrade writes head and reads the answer within the run's timeout.
func (rc *rawConn) upgrade(e *env, head []byte) rawAnswer {
	_ = rc.c.SetDeadline(time.Now().Add(e.o.Timeout))
	if _, err := rc.c.Write(head); err != nil {
		_ = rc.Close()
		return rawAnswer{err: err}
	}
	return rc.readAnswer(e)
}

func (rc *rawConn) readAnswer(e *env) rawAnswer {
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		_ = rc.Close()
		return rawAnswer{err: err}
	}
	a := rawAnswer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		_ = rc.c.SetDeadline(time.Time{})
		a.conn = rc
		return a
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	a.body = string(b)
	e.obs.see(fmt.Sprintf("HTTP %d body", resp.StatusCode), b)
	_ = rc.Close()
	return a
}

// WebSocket opcodes the raw client uses.
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// frameHeader renders a masked FIN frame header announcing n payload bytes.
func frameHeader(op byte, n int, mask [4]byte) []byte {
	h := []byte{0x80 | op}
	switch {
	case n < 126:
		h = append(h, 0x80|byte(n))
	case n <= 0xFFFF:
		h = append(h, 0x80|126, byte(n>>8), byte(n))
	default:
		h = append(h, 0x80|127)
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	return append(h, mask[:]...)
}

func newMask() [4]byte {
	var m [4]byte
	_, _ = rand.Read(m[:])
	return m
}

// maskAt masks b, which starts at payload offset off, in place.
func maskAt(mask [4]byte, off int, b []byte) {
	for i := range b {
		b[i] ^= mask[(off+i)%4]
	}
}

// writeFrame sends one masked frame within the run's timeout.
func (rc *rawConn) writeFrame(e *env, op byte, payload []byte) error {
	m := newMask()
	p := append([]byte(nil), payload...)
	maskAt(m, 0, p)
	_ = rc.c.SetWriteDeadline(time.Now().Add(e.o.Timeout))
	_, err := rc.c.Write(append(frameHeader(op, len(payload), m), p...))
	return err
}

// frame is one frame read by the raw client.
type frame struct {
	op      byte
	payload []byte // at most rawMaxPayload bytes kept
	size    int64  // announced payload size
	code    uint16 // close code of a close frame
}

// readFrame reads one frame before the deadline.
func (rc *rawConn) readFrame(deadline time.Time) (frame, error) {
	_ = rc.c.SetReadDeadline(deadline)
	var h [2]byte
	if _, err := io.ReadFull(rc.br, h[:]); err != nil {
		return frame{}, err
	}
	f := frame{op: h[0] & 0x0F}
	n := int64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(rc.br, b[:]); err != nil {
			return f, err
		}
		n = int64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(rc.br, b[:]); err != nil {
			return f, err
		}
		n = int64(binary.BigEndian.Uint64(b[:]) & (1<<63 - 1))
	}
	if h[1]&0x80 != 0 { // a masked server frame: skip the key
		if _, err := rc.br.Discard(4); err != nil {
			return f, err
		}
	}
	f.size = n
	keep := min(n, rawMaxPayload)
	f.payload = make([]byte, keep)
	if _, err := io.ReadFull(rc.br, f.payload); err != nil {
		return f, err
	}
	if n > keep {
		if _, err := rc.br.Discard(int(n - keep)); err != nil {
			return f, err
		}
	}
	if f.op == opClose && len(f.payload) >= 2 {
		f.code = binary.BigEndian.Uint16(f.payload)
	}
	return f, nil
}

// rawReaction is what the server did after a raw probe.
type rawReaction struct {
	msgs   [][]byte
	pongs  int
	closed bool
	code   uint16
	reason string
	err    error // the connection ended without a close frame
}

func (r rawReaction) String() string {
	var parts []string
	if len(r.msgs) > 0 {
		parts = append(parts, "messages: "+summarize(r.msgs))
	}
	if r.pongs > 0 {
		parts = append(parts, fmt.Sprintf("%d pongs", r.pongs))
	}
	if r.closed {
		parts = append(parts, fmt.Sprintf("closed with %d %q", r.code, r.reason))
	} else if r.err != nil {
		parts = append(parts, "connection ended without a close frame: "+clip(r.err.Error(), 80))
	}
	if len(parts) == 0 {
		return "nothing: no reply and no close"
	}
	return strings.Join(parts, "; ")
}

// gone reports whether the connection ended (close frame or error).
func (r rawReaction) gone() bool { return r.closed || r.err != nil }

// watch reads frames until d passes, the connection ends, or stop says the
// reaction is decisive. Server pings are answered.
func (rc *rawConn) watch(e *env, d time.Duration, stop func(rawReaction) bool) rawReaction {
	var r rawReaction
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		f, err := rc.readFrame(deadline)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return r
			}
			r.err = err
			return r
		}
		switch f.op {
		case opText, opBinary, 0:
			r.msgs = append(r.msgs, f.payload)
			e.obs.see("message", f.payload)
		case opPong:
			r.pongs++
		case opPing:
			_ = rc.writeFrame(e, opPong, f.payload)
		case opClose:
			r.closed, r.code = true, f.code
			if len(f.payload) > 2 {
				r.reason = string(f.payload[2:])
				e.obs.see("close reason", f.payload[2:])
			}
			_ = rc.writeFrame(e, opClose, f.payload[:min(2, len(f.payload))])
			return r
		}
		if stop != nil && stop(r) {
			return r
		}
	}
	return r
}

// rawOpen opens an authenticated raw connection and reads the welcome, if
// one comes at once.
func (e *env) rawOpen(ctx context.Context, src netip.Addr) (*rawConn, rawReaction, error) {
	return e.rawOpenAs(ctx, src, e.tok)
}

// rawOpenAs is rawOpen with another credential.
func (e *env) rawOpenAs(ctx context.Context, src netip.Addr, tok string) (*rawConn, rawReaction, error) {
	a := e.rawUpgrade(ctx, src, rawRequest{tok: tok})
	if a.conn == nil {
		return nil, rawReaction{}, &refusedError{a: attempt{status: a.status, body: a.body, header: a.header, err: a.err}}
	}
	w := a.conn.watch(e, 300*time.Millisecond, func(r rawReaction) bool { return len(r.msgs) > 0 || r.gone() })
	if w.gone() {
		_ = a.conn.Close()
		return nil, w, fmt.Errorf("the server closed the connection at once: %s", w)
	}
	return a.conn, w, nil
}

// stillServes reports whether the target still answers an authenticated
// upgrade from a fresh address: after a probe that may crash it.
func (e *env) stillServes(ctx context.Context) (bool, string) {
	var last string
	for range 3 { // a process manager may be restarting it: a short grace
		a := e.dial(ctx, e.withCred(dialSpec{src: e.fresh()}, e.tok))
		if a.sess != nil {
			a.sess.close()
			return true, a.describe()
		}
		if a.status != 0 {
			return true, a.describe()
		}
		last = a.describe()
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			return false, last
		}
	}
	return false, last
}
