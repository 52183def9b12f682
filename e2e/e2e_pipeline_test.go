package e2e

import (
	"bytes"
	"compress/flate"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wsframe"
)

// rawDial is a hand-driven client (wsgatetest.RawConn) upgraded on s as user
// "raw" with the extra header lines, past its welcome.
func rawDial(t *testing.T, s *wsgatetest.Server, extra ...string) *wsgatetest.RawConn {
	t.Helper()
	r := wsgatetest.DialRaw(t, s.Addr, s.Cfg.Path, append([]string{"Authorization: Bearer " + s.Token(t, "raw", nil)}, extra...)...)
	if op, _ := r.Next(); op != 1 {
		t.Fatalf("first frame opcode %d, want the text welcome", op)
	}
	return r
}

// frame builds one client frame: masked unless noMask.
func frame(fin bool, rsv, op byte, payload []byte, noMask bool) []byte {
	return wsframe.Build(wsframe.B0(fin, rsv, op), uint64(len(payload)), payload, !noMask)
}

func plainServer(t *testing.T, mutate func(*config.Config)) *wsgatetest.Server {
	cfg := wsgatetest.Config()
	cfg.InsecurePlaintext = true
	cfg.Limits.HandshakeRate.Rate = 0
	return startMutated(t, cfg, mutate)
}

func TestProtocolViolationsGetRFCCloseCodes(t *testing.T) {
	s := plainServer(t, nil)
	ping := []byte(`{"type":"ping"}`)
	bigHeader := []byte{0x81, 0x80 | 127, 0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}
	cases := []struct {
		name  string
		bytes []byte
		code  uint16
	}{
		{"unmasked client frame", frame(true, 0, 1, ping, true), 1002},
		{"reserved bit without extension", frame(true, 4, 1, ping, false), 1002},
		{"reserved opcode 3", frame(true, 0, 3, ping, false), 1002},
		{"reserved control opcode 0xB", frame(true, 0, 0xB, nil, false), 1002},
		{"continuation without start", frame(true, 0, 0, ping, false), 1002},
		{"new data frame inside fragmented message", append(frame(false, 0, 1, ping[:5], false), frame(true, 0, 1, ping, false)...), 1002},
		{"control frame over 125 bytes", frame(true, 0, 9, bytes.Repeat([]byte("x"), 126), false), 1002},
		{"fragmented control frame", frame(false, 0, 9, []byte("x"), false), 1002},
		{"invalid UTF-8", frame(true, 0, 1, []byte{'"', 0xff, 0xfe, '"'}, false), 1007},
		{"binary not allowed", frame(true, 0, 2, []byte{1, 2, 3}, false), 1003},
		{"64-bit length announcing 4 EiB", bigHeader, 1009},
		{"20 KB message", frame(true, 0, 1, []byte(`{"type":"chat","text":"`+strings.Repeat("a", 20000)+`"}`), false), 1009},
		{"too many fragments", func() []byte {
			var b []byte
			b = append(b, frame(false, 0, 1, []byte("{"), false)...)
			for i := 0; i < 100; i++ {
				b = append(b, frame(false, 0, 0, []byte(" "), false)...)
			}
			return b
		}(), 1009},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rawDial(t, s)
			if _, err := r.Write(c.bytes); err != nil {
				t.Fatal(err)
			}
			r.ExpectClose(c.code)
		})
	}
	// The server still serves a normal client.
	cl := s.Connect(t, "after-violations", nil)
	cl.Send(t, `{"type":"ping"}`)
	cl.Expect(t, "pong", 5*time.Second)
}

func TestCompressionBombRefusedWithinCap(t *testing.T) {
	s := plainServer(t, func(c *config.Config) { c.Compression.Enabled = true })
	r := rawDial(t, s, "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover")
	// 8 MiB of one byte deflates to about 8 KiB... too big for one frame under the
	// cap, so the bomb is 4 MiB (about 4 KiB compressed): 500x the 8 KiB cap.
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = fw.Write(bytes.Repeat([]byte("A"), 4<<20))
	_ = fw.Flush()
	small := buf.Bytes()[:buf.Len()-4] // permessage-deflate strips the sync tail
	if len(small) >= 8192 {
		t.Fatalf("bomb frame is %d bytes, must fit under the cap", len(small))
	}
	if _, err := r.Write(frame(true, 4, 1, small, false)); err != nil {
		t.Fatal(err)
	}
	r.ExpectClose(1009)
}

func TestInvalidMessagesGetErrorReplies(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	c := s.Connect(t, "val", nil)
	cases := []struct{ msg, code, path string }{
		{`{not json`, "invalid_json", ""},
		{`{"type":"teleport","id":"q1"}`, "unknown_type", ""},
		{`{"type":"chat","id":"q2","text":42}`, "invalid_message", "/text"},
		{`[1,2,3]`, "invalid_message", ""},
		{`{"type":"ping","type":"ping"}`, "invalid_json", ""},
	}
	for _, tc := range cases {
		c.Send(t, tc.msg)
		e := c.Expect(t, "error", 5*time.Second)
		if e["code"] != tc.code && !(tc.code == "invalid_json" && e["code"] == "invalid_message") {
			t.Errorf("%s: code %v, want %s", tc.msg, e["code"], tc.code)
		}
		if tc.path != "" && e["path"] != tc.path {
			t.Errorf("%s: path %v, want %s", tc.msg, e["path"], tc.path)
		}
		if strings.Contains(fmt.Sprint(e["message"]), "teleport") {
			t.Errorf("error echoes the payload: %v", e)
		}
	}
	c.Send(t, `{"type":"chat","id":"q3","text":42}`)
	if e := c.Expect(t, "error", 5*time.Second); e["ref"] != "q3" {
		t.Errorf("ref not echoed: %v", e)
	}
}

func TestDeepJSONRefusedCheaply(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Limits.MaxMessageBytes = 32768
	cfg.Rate.Tiers["default"] = config.Tier{Messages: config.RateLimit{Rate: 100, Burst: 100}, Bytes: config.RateLimit{Rate: 1 << 20, Burst: 1 << 20},
		UserMessages: config.RateLimit{Rate: 100, Burst: 100}, UserBytes: config.RateLimit{Rate: 1 << 20, Burst: 1 << 20},
		IPMessages: config.RateLimit{Rate: 100, Burst: 100}, IPBytes: config.RateLimit{Rate: 1 << 20, Burst: 1 << 20}}
	s := wsgatetest.Start(t, cfg)
	c := s.Connect(t, "deep", nil)
	c.Send(t, `{"type":"data","payload":`+strings.Repeat("[", 10000)+strings.Repeat("]", 10000)+`}`)
	if e := c.Expect(t, "error", 5*time.Second); e["code"] != "limit_exceeded" && e["code"] != "invalid_message" {
		t.Fatalf("deep JSON: %v", e)
	}
	c.Send(t, `{"type":"ping"}`)
	c.Expect(t, "pong", 5*time.Second)
}

// The guide's validation: a flood of 2,000 messages is throttled and then closed,
// while a second user on another connection keeps getting pongs promptly.
func TestFloodThrottledThenClosedOthersUnaffected(t *testing.T) {
	s := wsgatetest.Start(t, nil)
	attacker := s.Connect(t, "flooder", nil)
	victim := s.Connect(t, "bystander", nil)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		msg := []byte(`{"type":"ping"}`)
		for i := 0; i < 2000; i++ {
			if attacker.Conn.WriteMessage(1, msg) != nil {
				return
			}
		}
	}()
	// During the flood, the bystander's pings are answered.
	for i := 0; i < 20; i++ {
		victim.SendJSON(t, map[string]any{"type": "ping", "id": i})
		p := victim.Expect(t, "pong", 2*time.Second)
		if p["ref"] != float64(i) {
			t.Fatalf("pong %v", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	limited := false
	deadline := time.After(10 * time.Second)
	for !limited {
		select {
		case b := <-attacker.Msgs:
			if bytes.Contains(b, []byte(`"rate_limited"`)) {
				limited = true
			}
		case <-deadline:
			t.Fatal("no rate_limited error during the flood")
		}
	}
	attacker.ExpectClose(t, 1008, 10*time.Second)
}

func TestStrikesBanTheOffender(t *testing.T) {
	cfg := wsgatetest.Config()
	cfg.Abuse.MaxStrikes = 5
	s := wsgatetest.Start(t, cfg)
	strikeOut(t, s, "striker", 5)
	_, resp, err := s.Dial(t, wsgatetest.DialOptions{Header: bearer(s.Token(t, "striker", nil))})
	if err == nil || resp == nil || resp.StatusCode != 403 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("banned client: err=%v resp=%v", err, resp)
	}
}
