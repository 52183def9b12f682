package bench

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	wsclient "github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/internal/conn/transport"
)

// reply is a server answer a waiting goroutine cares about.
type reply struct {
	typ    string
	ref    int64
	hasRef bool
}

// client is one bench connection; its transport.Handler methods run on the
// goroutine serving it.
type client struct {
	r         *runner
	n         int
	conn      *transport.Conn
	first     chan struct{} // closed at the first server message
	firstOnce sync.Once
	replies   chan reply
	done      chan struct{} // closed by OnClose
	subscribe bool          // fan-out subscriber: record deliveries
	tracked   bool          // held for the run: a close before the end counts
	connID    string        // from the welcome, when signing (written before first closes)
	signer    *wsclient.Signer
}

func newClient(r *runner, n int, subscriber bool) *client {
	return &client{r: r, n: n, first: make(chan struct{}), replies: make(chan reply, 8), done: make(chan struct{}), subscribe: subscriber}
}

func (c *client) OnMessage(_ *transport.Conn, _ transport.Opcode, data []byte) {
	first := false
	c.firstOnce.Do(func() {
		if c.r.o.Sign != "" {
			c.connID, _ = findString(data, `"conn_id":`)
		}
		close(c.first)
		first = true
	})
	typ := msgType(data)
	if first && typ == "welcome" {
		return
	}
	if c.subscribe && (typ == "message" || typ == "broadcast") {
		if t, ok := findInt(data, `"t":`); ok {
			c.r.hist.Record(time.Duration(time.Now().UnixNano() - t))
			c.r.delivered.Add(1)
		}
		return
	}
	switch typ {
	case "pong", "ack", "error":
		rep := reply{typ: typ}
		rep.ref, rep.hasRef = findInt(data, `"ref":`)
		select {
		case c.replies <- rep:
		default: // nobody waits for this many answers: drop
		}
	}
}

func (c *client) OnPing(*transport.Conn, []byte) {}
func (c *client) OnPong(*transport.Conn, []byte) {}
func (c *client) OnClose(_ *transport.Conn, err error) {
	if c.tracked && !c.r.closing.Load() {
		c.r.closedEarly.Add(1)
		code, _ := transport.CloseCode(err)
		c.r.mu.Lock()
		c.r.closeCodes[strconv.Itoa(int(code))]++
		c.r.mu.Unlock()
	}
	close(c.done)
}

// msgType finds "type":"…" without decoding the whole message: the client
// must stay cheap so that it measures the server, not itself.
func msgType(b []byte) string {
	const key = `"type":"`
	if i := bytes.Index(b, []byte(key)); i >= 0 {
		rest := b[i+len(key):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 && j < 64 {
			return string(rest[:j])
		}
	}
	var m struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(b, &m) == nil {
		return m.Type
	}
	return ""
}

// findInt reads the integer after key (e.g. `"ref":`), allowing spaces.
func findInt(b []byte, key string) (int64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(b[i+len(key):], " ")
	j := 0
	for j < len(rest) && j < 20 && (rest[j] >= '0' && rest[j] <= '9' || j == 0 && rest[j] == '-') {
		j++
	}
	v, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return v, err == nil
}
