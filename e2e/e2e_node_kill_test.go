package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

// killLeaseTTL is the quota lease TTL of every node in the kill test: short, so
// the killed node's leases lapse within the test, and above the 300 ms minimum
// with room for heartbeats (every TTL/3) on a loaded machine.
const killLeaseTTL = 3 * time.Second

// killSlack is how much later than killLeaseTTL after the kill a survivor may
// still refuse the killed node's user: polling (100 ms), the heartbeat that
// notices, and a loaded -race machine.
const killSlack = 2 * time.Second

// killNodeConfig sets what the kill test needs on every node, in-process or
// not: a connection quota and a strike limit small enough to reach, the short
// lease TTL, history that covers a subscriber's time away, and rates that never
// refuse the test's own traffic.
func killNodeConfig(c *config.Config) {
	c.Limits.Connections.PerUser = 2
	c.Limits.HandshakeRate = config.RateLimit{Rate: 1000, Burst: 1000}
	c.Abuse.MaxStrikes = 3
	c.State.Redis.LeaseTTL = killLeaseTTL
	lots := config.RateLimit{Rate: 1_000_000, Burst: 1_000_000}
	c.Rate.Tiers["default"] = config.Tier{Messages: lots, Bytes: lots, UserMessages: lots, UserBytes: lots, IPMessages: lots, IPBytes: lots}
	c.Limits.Outbox.MaxMessages = 1024 // above history_size: a recovery fits
	ns := c.Channels.Namespaces["chat"]
	ns.HistorySize = 1000
	c.Channels.Namespaces["chat"] = ns
	c.Log.Level = "warn"
}

// killNodeYAML is killNodeConfig for the wsgate process, in the configuration
// file format (REDIS is replaced by the address). It serves plain ws:// on
// loopback: what the test is about is the shared state, not TLS, and the
// in-process nodes' certificate key is not exported.
const killNodeYAML = `listen: 127.0.0.1:0
insecure_plaintext: true
admin:
  listen: 127.0.0.1:0
  token: ` + adminToken + `
auth:
  keys:
    - id: test
      algorithms: [HS256]
      secret: ` + wsgatetest.Secret + `
limits:
  handshake_rate: {rate: 1000, burst: 1000}
  connections:
    per_user: 2
  outbox:
    max_messages: 1024
abuse:
  max_strikes: 3
rate:
  tiers:
    default:
      messages: {rate: 1000000, burst: 1000000}
      bytes: {rate: 1000000, burst: 1000000}
      user_messages: {rate: 1000000, burst: 1000000}
      user_bytes: {rate: 1000000, burst: 1000000}
      ip_messages: {rate: 1000000, burst: 1000000}
      ip_bytes: {rate: 1000000, burst: 1000000}
channels:
  namespaces:
    chat:
      client_publish: true
      max_subscribers: 10000
      history_size: 1000
      history_ttl: 10m
      presence: true
      join_leave: true
log:
  level: info
state:
  backend: redis
  redis:
    addrs: [REDIS]
    prefix: "wsgate-e2e:"
    lease_ttl: 3s
`

// adminToken is the admin token of the test configuration (wsgatetest.Config).
const adminToken = "admin-token-admin-token-admin-token-0123"

// nodeProc is a wsgate node running as its own OS process (`wsgate serve -c`),
// so that the test can SIGKILL it: nothing of it runs after the kill, no
// deferred Close, no lease withdrawn.
type nodeProc struct {
	cmd    *exec.Cmd
	url    string // ws://127.0.0.1:port/ws
	logs   *wsgatetest.LogBuffer
	exited chan struct{}
	err    error // the exit status, once exited is closed
}

var listeningLine = regexp.MustCompile(`"msg":"listening".*"addr":"([^"]+)"`)

// startNodeProc builds the wsgate binary and serves killNodeYAML against the
// Redis at redisAddr until it is killed or the test ends.
func startNodeProc(t *testing.T, redisAddr string) *nodeProc {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "wsgate")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append(append([]string{"build"}, processBuildFlags...), "-o", bin, "github.com/wsgate/wsgate/cmd/wsgate")
	if out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build wsgate: %v\n%s", err, out)
	}
	file := filepath.Join(dir, "wsgate.yaml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(killNodeYAML, "REDIS", redisAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{cmd: exec.Command(bin, "serve", "-c", file), logs: &wsgatetest.LogBuffer{}, exited: make(chan struct{})}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "WSGATE_") { // every WSGATE_* variable is configuration
			p.cmd.Env = append(p.cmd.Env, e)
		}
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // owned by the process: ends when it exits
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.kill(t) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := listeningLine.FindStringSubmatch(p.logs.String()); m != nil {
			p.url = "ws://" + m[1] + "/ws"
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("wsgate exited (%v) before listening:\n%s", p.err, p.logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("wsgate not listening within 30s:\n%s", p.logs)
		}
	}
}

// kill sends SIGKILL (idempotent) and waits for the process to be gone.
func (p *nodeProc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Error("wsgate process not gone within 10s of SIGKILL")
	}
	// Under -race the process has the race detector too; it reports on stderr.
	if strings.Contains(p.logs.String(), "WARNING: DATA RACE") {
		t.Errorf("the wsgate process reported a data race:\n%s", p.logs)
	}
}

// dial opens a connection to the process with a token minted by via (every
// node trusts the same secret); it returns the refusal's response, if any.
func (p *nodeProc) dial(t *testing.T, via *wsgatetest.Server, sub string, claims map[string]any) (*wsgatetest.Client, *http.Response, error) {
	t.Helper()
	return via.Dial(t, wsgatetest.DialOptions{URL: p.url, Header: bearer(via.Token(t, sub, claims))})
}

// connect is dial that must succeed, through the welcome.
func (p *nodeProc) connect(t *testing.T, via *wsgatetest.Server, sub string, claims map[string]any) *wsgatetest.Client {
	t.Helper()
	c, resp, err := p.dial(t, via, sub, claims)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("connect %s to the wsgate process: %v (status %d)", sub, err, status)
	}
	if w := c.Expect(t, "welcome", 5*time.Second); w["user"] != sub {
		t.Fatalf("welcome for %v, want %s", w["user"], sub)
	}
	return c
}

// userStatus is the HTTP status of a handshake to n for sub: 101 when admitted
// (the connection stays open until the test ends), else the refusal's.
func userStatus(t *testing.T, n *wsgatetest.Server, sub string) int {
	t.Helper()
	st, _ := dialStatus(t, n, wsgatetest.DialOptions{Header: bearer(n.Token(t, sub, nil))})
	return st
}

// Issue 16, node loss for real: two in-process nodes (A, B) and one wsgate
// process (K) on one real redis-server. Publishers on A and K and subscribers on
// A, B and K run with acks; K gets SIGKILL mid-traffic. K's publisher moves to B
// (as a client retries); K's subscribers reconnect to A and B with `since` =
// their last position. Then:
//   - every acked publication (K's acked before it died included) reached every
//     subscriber exactly once, in order, at its acked position, or the subscriber
//     got recovery_failed covering it; the subscribers of A and B got no
//     recovery_failed at all: everything K acked reached them;
//   - K's quota leases stop counting within lease_ttl: a user at its
//     connection quota on K (refused on A before the kill) is admitted on B
//     within lease_ttl + slack of the kill;
//   - strike and ban state written through K survives it: a user K banned stays
//     banned on A, and a user with two strikes on K is banned by one more on B.
func TestClusterNodeKilledAckedMeansDeliveredOrReported(t *testing.T) {
	rs, nodes := cluster(t, 2, killNodeConfig)
	a, b := nodes[0], nodes[1]
	k := startNodeProc(t, rs.Addr())

	// Shared state written through K before it dies.
	k.connect(t, a, "quota-user", nil)
	k.connect(t, a, "quota-user", nil)
	if st := userStatus(t, a, "quota-user"); st != http.StatusTooManyRequests {
		t.Fatalf("quota-user (2 connections on K, per_user 2) got %d on A, want 429", st)
	}
	striker := k.connect(t, a, "striker", nil)
	striker.Send(t, `{"type":"nope"}`)
	striker.Send(t, `{"type":"nope"}`)
	// A session handles its messages in order and replies to the ping after
	// both strikes were recorded (a refusal is answered before its strike).
	striker.Send(t, `{"type":"ping","id":"after-strikes"}`)
	striker.Expect(t, "pong", 5*time.Second)
	bannedByK := k.connect(t, a, "banned-by-k", nil)
	for range 3 {
		bannedByK.Send(t, `{"type":"nope"}`)
	}
	bannedByK.ExpectClose(t, 1008, 5*time.Second)

	// Subscribers: one on A, one on B, two on K (onK); reader: the current
	// connection's reader, which returns once it closed and was recorded.
	f := newFaultTrial(t)
	onK := map[*faultSub]bool{}
	reader := map[*faultSub]<-chan struct{}{}
	for _, x := range []struct {
		name string
		c    func(sub string) *wsgatetest.Client
		onK  bool
	}{
		{"sub-a", func(sub string) *wsgatetest.Client { return a.Connect(t, sub, chatPerms) }, false},
		{"sub-b", func(sub string) *wsgatetest.Client { return b.Connect(t, sub, chatPerms) }, false},
		{"sub-k0", func(sub string) *wsgatetest.Client { return k.connect(t, a, sub, chatPerms) }, true},
		{"sub-k1", func(sub string) *wsgatetest.Client { return k.connect(t, a, sub, chatPerms) }, true},
	} {
		s := &faultSub{name: x.name}
		onK[s] = x.onK
		reader[s] = f.subscribe(s, x.c(x.name), nil)
	}
	f.subscribed()

	// Publishers on A and K, one publication in flight each, acks recorded.
	pubA := &faultPublisher{name: "pub-a", c: a.Connect(t, "pub-a", chatPerms), acked: map[string]pos{}}
	pubK := &faultPublisher{name: "pub-k", c: k.connect(t, a, "pub-k", chatPerms), acked: map[string]pos{}}
	f.publish(pubA)
	pubKDone := f.publish(pubK)
	f.progress("before the kill", 100)

	// SIGKILL K mid-traffic.
	k.kill(t)
	killedAt := time.Now()
	// K's leases are still live (renewed at most TTL/3 ago): its quota still counts.
	if st := userStatus(t, b, "quota-user"); time.Since(killedAt) < killLeaseTTL/3 && st != http.StatusTooManyRequests {
		t.Fatalf("quota-user got %d on B right after the kill, want 429 (K's lease still live)", st)
	}
	select {
	case <-pubKDone:
	case <-time.After(10 * time.Second):
		t.Fatal("K's publisher still running 10s after the kill")
	}
	ackedByK := pubK.ackCount()
	t.Logf("K killed after %d acks of pub-k (pub-k stopped: %s)", ackedByK, pubK.fatal)
	// pub-k retries on B, as a client would; progress waits for A and B.
	pubB := &faultPublisher{name: "pub-b", c: b.Connect(t, "pub-b", chatPerms), acked: map[string]pos{}}
	f.pubs = []*faultPublisher{pubA}
	f.publish(pubB)

	// K's subscribers see their connections end and reconnect, alternately to
	// A and B, with the last position they have.
	for i, s := range f.subs {
		if !onK[s] {
			continue
		}
		select {
		case <-reader[s]:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: connection to K not closed within 10s of the kill", s.name)
		}
		since := s.last()
		to := []*wsgatetest.Server{a, b}[i%2]
		reader[s] = f.subscribe(s, connectRetrying(t, to, s.name), &since)
	}

	// K's quota leases lapse within the TTL: quota-user is admitted on B.
	admitted := time.Duration(0)
	for deadline := killedAt.Add(killLeaseTTL + killSlack); ; {
		st := userStatus(t, b, "quota-user")
		if st == http.StatusSwitchingProtocols {
			admitted = time.Since(killedAt)
			break
		}
		if st != http.StatusTooManyRequests {
			t.Fatalf("quota-user got %d on B while K's lease lapses, want 429 or admitted", st)
		}
		if time.Now().After(deadline) {
			t.Fatalf("quota-user still refused on B %v after K was killed (lease_ttl %v)", time.Since(killedAt), killLeaseTTL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.progress("after the kill", 50)

	// Strikes and bans written through K are intact.
	if st := userStatus(t, a, "banned-by-k"); st != http.StatusForbidden {
		t.Fatalf("banned-by-k (banned through K) got %d on A after the kill, want 403", st)
	}
	striker2 := b.Connect(t, "striker", nil)
	striker2.Send(t, `{"type":"nope"}`)
	if reason := striker2.ExpectClose(t, 1008, 5*time.Second); reason != "banned" {
		t.Fatalf("third strike (two on K) closed with %q, want banned", reason)
	}
	if st := userStatus(t, a, "striker"); st != http.StatusForbidden {
		t.Fatalf("striker got %d on A after its third strike, want 403", st)
	}
	f.progress("after the strikes", 20)
	acked, total := f.finish(a, []*faultPublisher{pubA, pubK, pubB})
	for _, s := range f.subs {
		checkFaultSubscriber(t, s, acked)
		got := map[string]bool{}
		rfs, recovered := 0, false
		for _, ev := range s.events() {
			switch {
			case ev.kind == "message":
				got[ev.id] = true
			case ev.kind == "recovery_failed":
				rfs++
			case ev.kind == "ack" && ev.recovered:
				recovered = true
			}
		}
		if onK[s] && !recovered && rfs == 0 {
			t.Fatalf("%s: resubscribe with since neither recovered nor answered recovery_failed", s.name)
		}
		if onK[s] {
			continue
		}
		// Nothing was lost in Redis: a subscriber that never moved has every
		// acked publication, K's included.
		if rfs != 0 {
			t.Fatalf("%s (never moved) got %d recovery_failed", s.name, rfs)
		}
		for _, id := range pubK.order {
			if !got[id] {
				t.Fatalf("%s: %s, acked by K before it died, not delivered", s.name, id)
			}
		}
	}
	t.Logf("%d publications acked (%d by K before the kill), quota-user admitted on B %v after the kill (lease_ttl %v)",
		total, ackedByK, admitted.Round(10*time.Millisecond), killLeaseTTL)
}
