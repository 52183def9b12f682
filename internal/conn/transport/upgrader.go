package transport

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lxzan/gws"
)

// Upgrader turns HTTP requests into server-side connections with one set of
// Options. Build it once and share it: with compression enabled it holds a
// pool of compressors that must not be created per connection.
type Upgrader struct {
	opts    Options
	deflate deflateConfig
	up      *gws.Upgrader
	reads   *readPool
}

// NewUpgrader validates opts (nil means defaults) and builds an Upgrader.
func NewUpgrader(opts *Options) (*Upgrader, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	dc := newDeflateConfig(o.Compression)
	so := &gws.ServerOption{
		ParallelEnabled:     false,
		ReadMaxPayloadSize:  o.MaxMessageBytes,
		ReadBufferSize:      o.ReadBufferSize,
		WriteMaxPayloadSize: maxWriteBytes,
		CheckUtf8Enabled:    true,
		Logger:              slogLogger{o.Logger},
		Recovery:            gwsRecovery(o.Logger),
		HandshakeTimeout:    o.WriteTimeout,
		NewSession:          newNoSession,
		PermessageDeflate:   gwsDeflate(o.Compression, dc),
	}
	return &Upgrader{opts: o, deflate: dc, up: gws.NewUpgrader(eventAdapter{}, so), reads: newReadPool(o.ReadBufferSize)}, nil
}

// Upgrade answers r with 101 Switching Protocols and returns the connection
// without starting to read from it: call Serve. subprotocol, chosen by the
// caller from the client's offer, is echoed in Sec-WebSocket-Protocol when
// not empty; the client's list itself is never echoed (it may carry a
// token). A request that fails ValidateUpgradeRequest is answered with its
// status and the *HandshakeError is returned.
func (u *Upgrader) Upgrade(w http.ResponseWriter, r *http.Request, subprotocol string, h Handler) (*Conn, error) {
	if h == nil {
		return nil, errors.New("transport: upgrade: nil handler")
	}
	if herr := ValidateUpgradeRequest(r); herr != nil {
		herr.WriteResponse(w)
		return nil, herr
	}
	if subprotocol != "" && !validToken(subprotocol) {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return nil, fmt.Errorf("transport: upgrade: subprotocol %q is not a token", subprotocol)
	}
	raw, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return nil, fmt.Errorf("transport: upgrade: hijack: %w", err)
	}
	// net/http may have left read/write deadlines on the socket.
	_ = raw.SetDeadline(time.Time{})

	wire := newWireConn(raw, true, &u.opts)
	wire.subprotocol = subprotocol
	if u.deflate.enabled {
		// wsgate negotiates permessage-deflate itself (gws answers offers it
		// cannot honour): gws is handed the chosen offer, so that its
		// connection state matches the answer, and the 101 carries ours.
		resp, offer := negotiateDeflate(r.Header.Values("Sec-WebSocket-Extensions"), u.deflate)
		wire.rewriteExt, wire.extensions = true, resp
		r2 := *r
		r2.Header = r.Header.Clone()
		r2.Header.Del("Sec-WebSocket-Extensions")
		if offer != "" && u.opts.Reader != ReaderGws && u.opts.Reader != "" && !strings.Contains(offer, extClientNoCT) {
			// gws only compresses here: without this it would take a
			// decompression window (up to 32 KiB) from its pool for a
			// reader that never runs to give it back.
			offer += "; " + extClientNoCT
		}
		if offer != "" {
			r2.Header.Set("Sec-WebSocket-Extensions", offer)
		}
		r = &r2
	}
	// Frames a client pipelined behind its request sit in net/http's buffer.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		wire.prefix = string(b)
	}
	ownReader := u.opts.Reader == ReaderEvent || u.opts.Reader == ReaderParked
	wire.pooled = newPooledReader(wire, u.reads)
	var ws *gws.Conn
	if ownReader && wire.extensions == "" {
		// The transport reads and writes this connection (writer.go): no
		// gws connection is made, the 101 is ours.
		if _, err := wire.writeDeadlined(response101(r.Header.Get("Sec-WebSocket-Key"), subprotocol)); err != nil {
			_ = wire.closeNow()
			return nil, fmt.Errorf("transport: upgrade: %w", err)
		}
	} else {
		size := u.opts.ReadBufferSize
		if ownReader || wire.pooled != nil {
			// gws only writes (its reader is never started), or the
			// socket's bytes wait in a pooled buffer while gws reads them
			// and its own reader just assembles frame headers: bufio's
			// minimum will do.
			size = gwsReadBufferSize
		}
		br := bufio.NewReaderSize(wire, size)
		if ws, err = u.up.UpgradeFromConn(wire, br, r); err != nil {
			_ = wire.closeNow()
			return nil, fmt.Errorf("transport: upgrade: %w", err)
		}
	}
	wire.direct = wire.pooled != nil && wire.extensions == ""
	c := &Conn{ws: ws, wire: wire, h: h, log: u.opts.Logger}
	if ownReader {
		c.rd = newFrameReader(c, wire.extensions)
	}
	if u.opts.Reader == ReaderParked && parkingSupported && wire.pooled != nil {
		// Nothing will wait on the socket in Go's netpoller unless it
		// must: it leaves it (fdconn_linux.go), ≈ 0.9 KiB less per
		// connection.
		wire.detach()
		c.pk = &parking{}
	}
	wire.owner = c
	wire.handshaking.Store(false)
	return c, nil
}
