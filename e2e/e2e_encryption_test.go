package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

// Plaintext markers: every published payload carries this; no byte of Redis, of
// its pub/sub traffic, of the audit logs or of the server logs may.
const plainMarker = "XYZZY-PLAINTEXT"

var (
	encKey1 = "k1=base64:" + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	encKey2 = "k2=base64:" + "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
)

var (
	tradePerms = map[string]any{"channels": map[string]any{"sub": []string{"trades:*", "chat:*"}, "pub": []string{"trades:*", "chat:*"}}}
	vaultPerms = map[string]any{"channels": map[string]any{"sub": []string{"vault:*", "trades:*"}, "pub": []string{"vault:*", "trades:*"}}}
)

// redisCapture is a raw RESP connection (MONITOR or PSUBSCRIBE) recording every
// byte Redis sends it.
type redisCapture struct {
	conn net.Conn
	mu   sync.Mutex
	buf  strings.Builder
	done chan struct{}
}

func captureRedis(t *testing.T, addr, cmd string) *redisCapture {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("capture %s: %v", cmd, err)
	}
	c := &redisCapture{conn: conn, done: make(chan struct{})}
	if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatalf("capture %s: %v", cmd, err)
	}
	go func() {
		defer close(c.done)
		r := bufio.NewReader(conn)
		b := make([]byte, 32<<10)
		for {
			n, err := r.Read(b)
			c.mu.Lock()
			c.buf.Write(b[:n])
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-c.done // the read returns once the connection is closed
	})
	return c
}

func (c *redisCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// waitContains waits until get() contains s.
func waitContains(t *testing.T, what string, get func() string, s string) {
	t.Helper()
	wait.For(t, fmt.Sprintf("%s to contain %q", what, s), 10*time.Second, func() bool { return strings.Contains(get(), s) })
}

// dumpRedis returns the names and contents of every key under prefix, read with
// type-specific commands (DUMP would compress long strings and hide plaintext).
func dumpRedis(t *testing.T, addr, prefix string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rc.Close()
	keys, err := rc.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	var b strings.Builder
	for _, k := range keys {
		typ, err := rc.Type(ctx, k).Result()
		if err != nil {
			t.Fatalf("TYPE %s: %v", k, err)
		}
		var v any
		switch typ {
		case "none":
			continue // expired between KEYS and TYPE (e.g. a rate-limit key)
		case "string":
			v, err = rc.Get(ctx, k).Result()
		case "stream":
			v, err = rc.XRange(ctx, k, "-", "+").Result()
		case "hash":
			v, err = rc.HGetAll(ctx, k).Result()
		case "list":
			v, err = rc.LRange(ctx, k, 0, -1).Result()
		case "set":
			v, err = rc.SMembers(ctx, k).Result()
		case "zset":
			v, err = rc.ZRangeWithScores(ctx, k, 0, -1).Result()
		default:
			t.Fatalf("key %s has type %s the dump does not read", k, typ)
		}
		if errors.Is(err, goredis.Nil) {
			continue // expired since TYPE
		}
		if err != nil {
			t.Fatalf("read %s (%s): %v", k, typ, err)
		}
		fmt.Fprintf(&b, "%s %s %v\n", k, typ, v)
	}
	return b.String()
}

func encCluster(t *testing.T) (addr string, nodes []*wsgatetest.Server, audits []string) {
	t.Helper()
	dir := t.TempDir()
	i := 0
	rs, nodes := cluster(t, 2, func(c *config.Config) {
		c.Rate.Tiers["default"] = config.Tier{Messages: config.RateLimit{Rate: 1000, Burst: 1000}, Bytes: config.RateLimit{Rate: 1 << 24, Burst: 1 << 24},
			UserMessages: config.RateLimit{Rate: 1000, Burst: 1000}, UserBytes: config.RateLimit{Rate: 1 << 24, Burst: 1 << 24},
			IPMessages: config.RateLimit{Rate: 5000, Burst: 5000}, IPBytes: config.RateLimit{Rate: 1 << 24, Burst: 1 << 24}}
		c.Channels.Namespaces["trades"] = config.Namespace{ClientPublish: true, HistorySize: 200, HistoryTTL: 10 * time.Minute,
			Encryption: "at_rest"}
		c.Encryption.Keys = []string{encKey1}
		c.Audit.Path = filepath.Join(dir, fmt.Sprintf("audit-%d.log", i))
		c.Audit.MessageSampleRate = 1
		audits = append(audits, c.Audit.Path)
		i++
	})
	return rs.Addr(), nodes, audits
}

// reloadKeys applies keys to every node, the way an operator rolls a change out.
func reloadKeys(t *testing.T, nodes []*wsgatetest.Server, keys ...string) {
	t.Helper()
	for _, n := range nodes {
		c := *n.Cfg
		c.Encryption.Keys = keys
		if err := n.Reload(&c); err != nil {
			t.Fatalf("reload with keys %d: %v", len(keys), err)
		}
		n.Cfg = &c
	}
}

func tradeMsg(i int) map[string]any {
	return map[string]any{"type": "publish", "id": i, "channel": "trades:eurusd",
		"payload": map[string]any{"n": i, "note": fmt.Sprintf("%s-%d", plainMarker, i)}}
}

func expectTrades(t *testing.T, c *wsgatetest.Client, from, to int) map[string]any {
	t.Helper()
	var last map[string]any
	for i := from; i < to; i++ {
		m := c.Expect(t, "message", 5*time.Second)
		p, _ := m["payload"].(map[string]any)
		if p == nil || p["n"] != float64(i) || p["note"] != fmt.Sprintf("%s-%d", plainMarker, i) {
			t.Fatalf("want plaintext trade %d, got %v", i, m)
		}
		last = m
	}
	return last
}

func TestEncryptionAtRestCluster(t *testing.T) {
	addr, nodes, audits := encCluster(t)
	a, b := nodes[0], nodes[1]
	mon := captureRedis(t, addr, "MONITOR")
	psub := captureRedis(t, addr, "PSUBSCRIBE *")
	waitContains(t, "the MONITOR capture", mon.String, "+OK")
	waitContains(t, "the PSUBSCRIBE capture", psub.String, "psubscribe")

	subA := subscriber(t, a, "sub-a", tradePerms, "trades:eurusd")
	subB := subscriber(t, b, "sub-b", tradePerms, "trades:eurusd")
	pub := a.Connect(t, "pub-a", tradePerms)

	// 0..19 under k1; then k2 is added everywhere (opens only); 20..39 still
	// under k1; then k2 goes first everywhere: 40..59 sealed under k2. Nothing
	// is waited for between the steps: the reloads happen mid-stream.
	for i := 0; i < 20; i++ {
		pub.SendJSON(t, tradeMsg(i))
	}
	reloadKeys(t, nodes, encKey1, encKey2)
	for i := 20; i < 40; i++ {
		pub.SendJSON(t, tradeMsg(i))
	}
	reloadKeys(t, nodes, encKey2, encKey1)
	for i := 40; i < 60; i++ {
		pub.SendJSON(t, tradeMsg(i))
	}
	acks := 0
	for acks < 60 {
		m := pub.Next(t, 5*time.Second)
		switch m["type"] {
		case "ack":
			acks++
		case "message":
		default:
			t.Fatalf("publisher got %v", m)
		}
	}
	expectTrades(t, subA, 0, 60)
	lastB := expectTrades(t, subB, 0, 20)
	// subB drops after 20 and recovers 20..59 (under both keys) on node A.
	posB := map[string]any{"offset": lastB["offset"], "epoch": lastB["epoch"]}
	subB.Conn.Close()
	back := a.Connect(t, "sub-b", tradePerms)
	back.SendJSON(t, map[string]any{"type": "subscribe", "id": "r", "channel": "trades:eurusd", "since": posB})
	expectTrades(t, back, 20, 60)

	// The end marker goes through an unencrypted namespace: once the captures
	// and the audit log hold it, they hold everything published before it.
	endMsg := map[string]any{"type": "publish", "id": "end", "channel": "chat:x", "payload": map[string]any{"m": "END-MARKER"}}
	pub.SendJSON(t, endMsg)
	waitContains(t, "the pub/sub capture", psub.String, "END-MARKER")
	waitContains(t, "the MONITOR capture", mon.String, "END-MARKER")
	readAudit := func() string { b, _ := os.ReadFile(audits[0]); return string(b) }
	waitContains(t, "node A's audit log", readAudit, "END-MARKER")

	dump := dumpRedis(t, addr, "wsgate-e2e:")
	if !strings.Contains(dump, "trades:eurusd") {
		t.Fatalf("the Redis dump has no trades history to check:\n%.2000s", dump)
	}
	for name, text := range map[string]string{
		"Redis keys": dump, "MONITOR capture": mon.String(), "pub/sub capture": psub.String(),
		"audit log A": readAudit(), "logs A": a.Logs.String(), "logs B": b.Logs.String(),
	} {
		if strings.Contains(text, plainMarker) {
			i := strings.Index(text, plainMarker)
			t.Errorf("%s holds plaintext: …%s…", name, text[max(0, i-200):min(len(text), i+100)])
		}
	}
	if !strings.Contains(psub.String(), "trades:eurusd") {
		t.Error("the pub/sub capture saw no trades traffic: the check above proved nothing")
	}
	au := readAudit()
	for _, want := range []string{`"sealed":true`, `"sealed_by":"k1"`, `"sealed_by":"k2"`} {
		if !strings.Contains(au, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}

	// k1 retired: recovery over what it sealed answers recovery_failed, never
	// garbage; recovery over k2's publications (40..59) still works.
	reloadKeys(t, nodes, encKey2)
	late := b.Connect(t, "late", tradePerms)
	late.SendJSON(t, map[string]any{"type": "subscribe", "id": "old", "channel": "trades:eurusd",
		"since": map[string]any{"offset": 0, "epoch": lastB["epoch"]}})
	late.Expect(t, "recovery_failed", 5*time.Second)
	late2 := b.Connect(t, "late2", tradePerms)
	since := map[string]any{"offset": lastB["offset"].(float64) + 20, "epoch": lastB["epoch"]} // message 39
	late2.SendJSON(t, map[string]any{"type": "subscribe", "id": "new", "channel": "trades:eurusd", "since": since})
	expectTrades(t, late2, 40, 60)
}

// One node, memory state: history serves plaintext; a reload that would leave an
// at_rest namespace without keys is refused and changes nothing; a reload that
// removes the sealing key turns history over it into recovery_failed.
func TestEncryptionAtRestMemoryReload(t *testing.T) {
	s := realtimeServer(t, func(c *config.Config) {
		c.Channels.Namespaces["trades"] = config.Namespace{ClientPublish: true, HistorySize: 50, HistoryTTL: time.Minute, Encryption: "at_rest"}
		c.Encryption.Keys = []string{encKey1}
	})
	if !s.Logs.Contains(`"seals_with":"k1"`, 5*time.Second) {
		t.Fatalf("no start log naming the sealing key id:\n%s", s.Logs.String())
	}
	c := s.Connect(t, "trader", tradePerms)
	ack := subscribe(t, c, "trades:eurusd", nil)
	p := s.Connect(t, "pub", tradePerms) // acks go to the publisher, messages to c
	for i := 0; i < 3; i++ {
		p.SendJSON(t, tradeMsg(i))
		p.Expect(t, "ack", 5*time.Second)
	}
	expectTrades(t, c, 0, 3)
	since := map[string]any{"offset": 0, "epoch": ack["epoch"]}
	c.SendJSON(t, map[string]any{"type": "history", "id": "h1", "channel": "trades:eurusd", "since": since})
	h := c.Expect(t, "history", 5*time.Second)
	pubs, _ := h["publications"].([]any)
	if len(pubs) != 3 || !strings.Contains(fmt.Sprint(pubs[2]), plainMarker+"-2") {
		t.Fatalf("history is not the plaintext publications: %v", h)
	}

	bad := *s.Cfg
	bad.Encryption.Keys = nil
	if err := s.Reload(&bad); err == nil || !strings.Contains(err.Error(), "encryption") {
		t.Fatalf("reload leaving at_rest without keys: %v", err)
	}
	p.SendJSON(t, tradeMsg(3))
	p.Expect(t, "ack", 5*time.Second)
	expectTrades(t, c, 3, 4)

	other := *s.Cfg
	other.Encryption.Keys = []string{encKey2}
	if err := s.Reload(&other); err != nil {
		t.Fatal(err)
	}
	c.SendJSON(t, map[string]any{"type": "history", "id": "h2", "channel": "trades:eurusd", "since": since})
	if e := c.Expect(t, "error", 5*time.Second); e["code"] != "recovery_failed" {
		t.Fatalf("history over a removed key: %v", e)
	}
	// New publications (under k2) flow; the latest view skips what no key opens.
	p.SendJSON(t, tradeMsg(4))
	p.Expect(t, "ack", 5*time.Second)
	expectTrades(t, c, 4, 5)
	c.SendJSON(t, map[string]any{"type": "history", "id": "h3", "channel": "trades:eurusd", "limit": 10})
	h = c.Expect(t, "history", 5*time.Second)
	if pubs, _ := h["publications"].([]any); len(pubs) != 1 || !strings.Contains(fmt.Sprint(pubs[0]), plainMarker+"-4") {
		t.Fatalf("latest history after the key change: %v", h)
	}
	if strings.Contains(s.Logs.String(), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8") {
		t.Fatal("a master key secret reached the log")
	}
}

// e2eClient dials s with the Go client; keys nil means no Encryption at all.
func e2eClient(t *testing.T, s *wsgatetest.Server, sub string, keys []client.EncryptionKey, events chan<- client.Event) *client.Client {
	t.Helper()
	o := &client.DialOptions{RootCAs: s.RootCAs, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Token: func(context.Context) (string, error) { return s.Token(t, sub, vaultPerms), nil }}
	if keys != nil {
		o.Encryption = &client.Encryption{Keys: keys, Channels: func(ch string) bool { return strings.HasPrefix(ch, "vault:") }}
	}
	if events != nil {
		o.OnEvent = func(e client.Event) {
			select {
			case events <- e:
			default:
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, s.URL, o)
	if err != nil {
		t.Fatalf("dial %s: %v", sub, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// end_to_end: two SDK clients holding an application key exchange messages
// through two nodes and Redis that never see plaintext; a client without the
// key gets only the envelope; a tampered envelope is refused at the receiving
// client; the server refuses anything but an envelope.
func TestEncryptionEndToEnd(t *testing.T) {
	dir := t.TempDir()
	i := 0
	var audits []string
	rs, nodes := cluster(t, 2, func(c *config.Config) {
		c.Channels.Namespaces["vault"] = config.Namespace{ClientPublish: true, HistorySize: 50, HistoryTTL: time.Minute, Encryption: "end_to_end"}
		c.Channels.Namespaces["trades"] = config.Namespace{ClientPublish: true}
		c.Audit.Path = filepath.Join(dir, fmt.Sprintf("audit-%d.log", i))
		c.Audit.MessageSampleRate = 1
		audits = append(audits, c.Audit.Path)
		i++
	})
	a, b := nodes[0], nodes[1]
	psub := captureRedis(t, rs.Addr(), "PSUBSCRIBE *")
	waitContains(t, "the PSUBSCRIBE capture", psub.String, "psubscribe")
	appKey := []client.EncryptionKey{{ID: "app1", Secret: []byte(strings.Repeat("a", 32))}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	got := make(chan client.Message, 16)
	alice := e2eClient(t, b, "alice", appKey, nil)
	if _, err := alice.Subscribe(ctx, "vault:desk", &client.SubscribeOptions{OnMessage: func(m client.Message) { got <- m }}); err != nil {
		t.Fatal(err)
	}
	plain := make(chan client.Message, 16)
	eve := e2eClient(t, b, "eve", nil, nil)
	if _, err := eve.Subscribe(ctx, "vault:desk", &client.SubscribeOptions{OnMessage: func(m client.Message) { plain <- m }}); err != nil {
		t.Fatal(err)
	}
	bobEvents := make(chan client.Event, 16)
	bob := e2eClient(t, a, "bob", appKey, bobEvents)
	bobGot := make(chan client.Message, 16)
	if _, err := bob.Subscribe(ctx, "vault:desk", &client.SubscribeOptions{OnMessage: func(m client.Message) { bobGot <- m }}); err != nil {
		t.Fatal(err)
	}
	secretMsg := map[string]any{"note": plainMarker + "-e2e"}
	if _, err := bob.Publish(ctx, "vault:desk", secretMsg); err != nil {
		t.Fatalf("sealed publish refused: %v", err)
	}
	select {
	case m := <-got:
		if !strings.Contains(string(m.Payload), plainMarker+"-e2e") {
			t.Fatalf("alice got %s", m.Payload)
		}
	case <-ctx.Done():
		t.Fatal("timed out waiting for alice's message")
	}
	<-bobGot
	select {
	case m := <-plain:
		if strings.Contains(string(m.Payload), plainMarker) || !strings.HasPrefix(string(m.Payload), `"`) {
			t.Fatalf("a client without the key got %s", m.Payload)
		}
	case <-ctx.Done():
		t.Fatal("timed out waiting for eve's message")
	}

	// The server refuses plaintext and text in the end_to_end namespace.
	raw := a.Connect(t, "mallory", vaultPerms)
	raw.SendJSON(t, map[string]any{"type": "publish", "id": "p", "channel": "vault:desk", "payload": map[string]any{"x": plainMarker}})
	if e := raw.Expect(t, "error", 5*time.Second); e["code"] != "invalid_message" {
		t.Fatalf("plaintext into end_to_end: %v", e)
	}
	// A well-formed envelope with one flipped ciphertext byte passes the server
	// (it cannot tell) and is refused by the receiving SDK client.
	hist, err := alice.History(ctx, "vault:desk", nil)
	if err != nil || len(hist.Publications) != 1 {
		t.Fatalf("alice's history: %v, %v", hist, err)
	}
	if !strings.Contains(string(hist.Publications[0].Payload), plainMarker+"-e2e") {
		t.Fatalf("alice's history is not opened: %s", hist.Publications[0].Payload)
	}
	eveHist, err := eve.History(ctx, "vault:desk", nil)
	if err != nil || len(eveHist.Publications) != 1 {
		t.Fatalf("eve's history: %v, %v", eveHist, err)
	}
	var b64 string
	if err := json.Unmarshal(eveHist.Publications[0].Payload, &b64); err != nil {
		t.Fatal(err)
	}
	env, _ := base64.StdEncoding.DecodeString(b64)
	env[len(env)-1] ^= 1
	raw.SendJSON(t, map[string]any{"type": "publish", "id": "t", "channel": "vault:desk", "payload": base64.StdEncoding.EncodeToString(env)})
	raw.Expect(t, "ack", 5*time.Second)
	for {
		select {
		case e := <-bobEvents:
			if e.Kind == client.EventError && errors.Is(e.Err, client.ErrNotEncrypted) {
				goto refused
			}
		case m := <-bobGot:
			t.Fatalf("bob handed on a tampered message: %s", m.Payload)
		case <-ctx.Done():
			t.Fatal("timed out waiting for bob to refuse the tampered message")
		}
	}
refused:
	// Nothing on the server side saw plaintext.
	endMsg := map[string]any{"type": "publish", "id": "end", "channel": "trades:x", "payload": map[string]any{"m": "END-MARKER"}}
	raw.SendJSON(t, endMsg)
	waitContains(t, "the pub/sub capture", psub.String, "END-MARKER")
	readAudit := func() string { b, _ := os.ReadFile(audits[0]); return string(b) }
	waitContains(t, "node A's audit log", readAudit, "END-MARKER")
	dump := dumpRedis(t, rs.Addr(), "wsgate-e2e:")
	if !strings.Contains(dump, "vault:desk") {
		t.Fatalf("no vault history in Redis to check:\n%.2000s", dump)
	}
	for name, text := range map[string]string{"Redis keys": dump, "pub/sub capture": psub.String(),
		"audit log A": readAudit(), "logs A": a.Logs.String(), "logs B": b.Logs.String()} {
		// mallory's refused plaintext publish is audited as a violation without
		// its body; any other occurrence is a leak.
		if strings.Contains(text, plainMarker+"-e2e") {
			t.Errorf("%s holds the end-to-end plaintext", name)
		}
	}
}

// TestEncryptionTicketKeys: with encryption.end_to_end_keys the ticket endpoint
// hands each client the keys of exactly the end_to_end channels its token grants
// (a namespace key for a whole-namespace grant, a channel key for an exact
// channel, nothing for other patterns or other namespaces); SDK clients with
// FromServer exchange sealed messages with them; no key reaches logs or audit.
func TestEncryptionTicketKeys(t *testing.T) {
	e2eKey1 := "e1=base64:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("1", 32)))
	e2eKey2 := "e2=base64:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("2", 32)))
	cfg := wsgatetest.Config()
	cfg.Channels.Namespaces["vault"] = config.Namespace{ClientPublish: true, HistorySize: 50, HistoryTTL: time.Minute, Encryption: "end_to_end"}
	cfg.Channels.Namespaces["desk"] = config.Namespace{ClientPublish: true, HistorySize: 50, HistoryTTL: time.Minute, Encryption: "end_to_end"}
	cfg.Encryption.EndToEndKeys = []string{e2eKey2, e2eKey1}
	cfg.Audit.Path = filepath.Join(t.TempDir(), "audit.log")
	cfg.Audit.MessageSampleRate = 1
	s := wsgatetest.Start(t, cfg)
	grant := func(pats ...string) map[string]any {
		return map[string]any{"channels": map[string]any{"sub": pats, "pub": pats}}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: s.TLSConfig}, Timeout: 10 * time.Second}
	type delivered struct {
		ID, Namespace, Channel, Key string
	}
	var seen []string // every key handed out, to look for in logs and audit
	ticket := func(pats ...string) []delivered {
		t.Helper()
		req, _ := http.NewRequest("POST", s.HTTPURL+"/v1/tickets", nil)
		req.Header.Set("Authorization", "Bearer "+s.Token(t, "u", grant(pats...)))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("ticket: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
		var r struct {
			Encryption *struct{ Keys []delivered } `json:"encryption"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		if r.Encryption == nil {
			return nil
		}
		for _, k := range r.Encryption.Keys {
			seen = append(seen, k.Key)
		}
		return r.Encryption.Keys
	}
	str := func(ks []delivered) string {
		var out []string
		for _, k := range ks {
			out = append(out, k.ID+"/"+k.Namespace+k.Channel)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		pats []string
		want string
	}{
		{[]string{"vault:*"}, "e2/vault e1/vault"},
		{[]string{"*:*"}, "e2/desk e1/desk e2/vault e1/vault"},
		{[]string{"vault:a", "chat:*"}, "e2/vault:a e1/vault:a"},
		{[]string{"vault:a*", "desk:*", "vault:*x"}, "e2/desk e1/desk"},
		{[]string{"chat:*", "trades:x"}, ""},
	} {
		if got := str(ticket(tc.pats...)); got != tc.want {
			t.Errorf("%v: delivered %q, want %q", tc.pats, got, tc.want)
		}
	}
	// The namespace key works as an application master key for its channels.
	nsKey, _ := base64.RawURLEncoding.DecodeString(ticket("vault:*")[0].Key)
	holder := []client.EncryptionKey{{ID: "e2", Secret: nsKey}}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dialFS := func(sub string, enc *client.Encryption, pats ...string) (*client.Client, chan client.Message, chan error) {
		msgs, errs := make(chan client.Message, 16), make(chan error, 16)
		c, err := client.Dial(ctx, s.URL, &client.DialOptions{RootCAs: s.RootCAs, Encryption: enc,
			Token: func(context.Context) (string, error) { return s.Token(t, sub, grant(pats...)), nil },
			OnEvent: func(e client.Event) {
				if e.Kind == client.EventError {
					errs <- e.Err
				}
			}})
		if err != nil {
			t.Fatalf("dial %s: %v", sub, err)
		}
		t.Cleanup(func() { c.Close() })
		return c, msgs, errs
	}
	fromServer := &client.Encryption{FromServer: true}
	alice, aMsgs, aErrs := dialFS("alice", fromServer, "vault:*")
	bob, bMsgs, bErrs := dialFS("bob", fromServer, "vault:a")
	app, appMsgs, _ := dialFS("app", &client.Encryption{Keys: holder, Channels: func(ch string) bool { return strings.HasPrefix(ch, "vault:") }}, "vault:*")
	for _, c := range []struct {
		c  *client.Client
		ch chan client.Message
	}{{alice, aMsgs}, {bob, bMsgs}, {app, appMsgs}} {
		ch := c.ch
		if _, err := c.c.Subscribe(ctx, "vault:a", &client.SubscribeOptions{OnMessage: func(m client.Message) { ch <- m }}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.Publish(ctx, "vault:a", map[string]any{"from": "alice", "m": plainMarker}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Publish(ctx, "vault:a", map[string]any{"from": "bob", "m": plainMarker}); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan client.Message{"alice": aMsgs, "bob": bMsgs, "app (namespace key as master key)": appMsgs} {
		var got []string
		for len(got) < 2 {
			select {
			case m := <-ch:
				var p struct{ From string }
				if err := json.Unmarshal(m.Payload, &p); err != nil || p.From == "" {
					t.Fatalf("%s got %s", name, m.Payload)
				}
				got = append(got, p.From)
			case <-ctx.Done():
				t.Fatalf("%s got %v", name, got)
			}
		}
		if strings.Join(got, ",") != "alice,bob" {
			t.Fatalf("%s got %v", name, got)
		}
	}
	// bob's channel key does not open another channel of the namespace.
	if _, err := bob.Subscribe(ctx, "vault:b", nil); err == nil {
		t.Fatal("bob subscribed to vault:b")
	}
	if _, err := app.Publish(ctx, "vault:b", map[string]any{"from": "app"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-aErrs:
		t.Fatalf("alice: %v", err)
	case err := <-bErrs:
		t.Fatalf("bob: %v", err)
	default:
	}
	// No delivered key and no master secret in the logs or the audit log.
	audit, _ := os.ReadFile(cfg.Audit.Path)
	for _, k := range append(seen, "MTExMTExMTEx", "MjIyMjIyMjIy", plainMarker) {
		if strings.Contains(s.Logs.String(), k) || strings.Contains(string(audit), k) {
			t.Errorf("%.12s… is in the logs or the audit log", k)
		}
	}
}
