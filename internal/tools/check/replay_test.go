package check

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wsserve"
)

// replayServer welcomes with a conn_id and answers every message with ok,
// or, when strict, refuses a frame it has seen before.
type replayServer struct {
	strict bool
	mu     sync.Mutex
	seen   map[string]bool
}

func (s *replayServer) OnMessage(c *transport.Conn, _ transport.Opcode, data []byte) {
	s.mu.Lock()
	dup := s.seen[string(data)]
	s.seen[string(data)] = true
	s.mu.Unlock()
	if dup && s.strict {
		_ = c.WriteMessage(transport.Text, []byte(`{"type":"error","code":"replay"}`))
		return
	}
	_ = c.WriteMessage(transport.Text, []byte(`{"type":"ok"}`))
}
func (*replayServer) OnPing(*transport.Conn, []byte) {}
func (*replayServer) OnPong(*transport.Conn, []byte) {}
func (*replayServer) OnClose(*transport.Conn, error) {}

func TestReplayCheck(t *testing.T) {
	const key = `{"alg":"HS256","kid":"k1","key":"m_BCM2cPZ95jM8MsTxcE_EGZI44KBifyHyaRPH3UZKQ"}`
	for _, strict := range []bool{true, false} {
		t.Run(map[bool]string{true: "strict", false: "lenient"}[strict], func(t *testing.T) {
			h := &replayServer{strict: strict, seen: map[string]bool{}}
			u := wsserve.Start(t, h, wsserve.Options{OnOpen: func(c *transport.Conn) {
				_ = c.WriteMessage(transport.Text, []byte(`{"type":"welcome","conn_id":"c_1"}`))
			}}).URL
			rep, err := Run(context.Background(), &Options{
				URL: u, Secret: testSecret, SigningKey: []byte(key),
				Only: []string{"replay"}, ReplyWait: 500 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			want := Fail
			if strict {
				want = Pass
			}
			if r := rep.Results[0]; r.Status != want {
				t.Errorf("strict=%v: %s (%s), want %s", strict, r.Status, r.Got, want)
			}
		})
	}
}
