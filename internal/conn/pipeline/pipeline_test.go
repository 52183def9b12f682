package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/schema"
	"github.com/wsgate/wsgate/internal/state/limit"
)

// chatMessage returns a chat message of about n bytes.
func chatMessage(n int) string {
	head := `{"type":"chat","id":"req-42","channel":"room:lobby","text":"`
	tail := `"}`
	text := strings.Repeat("hello world, ", n/13+1)[:max(0, n-len(head)-len(tail))]
	return head + text + tail
}

// fakeLimiter allows `allow` messages per key, then refuses; err forces errors.
type fakeLimiter struct {
	mu    sync.Mutex
	used  map[string]int
	allow map[string]int // per key prefix
	err   error
	calls int
}

func (f *fakeLimiter) Allow(_ context.Context, key string, l limit.Limit, cost int) (bool, time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return false, 0, f.err
	}
	if f.used == nil {
		f.used = map[string]int{}
	}
	budget := l.Burst
	for p, n := range f.allow {
		if strings.HasPrefix(key, p) {
			budget = n
		}
	}
	if f.used[key]+cost > budget {
		return false, 250 * time.Millisecond, nil
	}
	f.used[key] += cost
	return true, 0, nil
}

func newTestPipeline(t testing.TB, o Options) *Pipeline {
	t.Helper()
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func process(p *Pipeline, st *ConnState, in string) (Message, *protocol.Error) {
	return p.Process(context.Background(), st, []byte(in))
}

func TestProcessBuiltins(t *testing.T) {
	p := newTestPipeline(t, Options{})
	st := &ConnState{ConnID: "c1"}
	valid := []string{
		`{"type":"ping"}`,
		`{"type":"ping","id":7}`,
		`{"type":"pong","id":"abc"}`,
		`{"type":"refresh","token":"eyJ.x.y"}`,
		`{"type":"subscribe","channel":"chat:lobby","since":{"offset":10,"epoch":"e1"},"token":"t"}`,
		`{"type":"subscribe","channel":"news"}`,
		`{"type":"unsubscribe","channel":"chat:a/b=c+d@e"}`,
		`{"type":"publish","channel":"chat:lobby","payload":{"any":[1,2,{"x":null}]}}`,
		`{"type":"publish","channel":"chat:lobby","payload":null}`,
		`{"type":"chat","text":"hi"}`,
		chatMessage(1024),
		`{"type":"data","payload":[1,2,3]}`,
		`{"type":"command","name":"orders.create","payload":{"n":1}}`,
		`{"type":"command","name":"x"}`,
		`{"type":"presence","channel":"room"}`,
		`{"type":"history","channel":"room","limit":50,"since":{"offset":0,"epoch":"x"}}`,
	}
	for _, in := range valid {
		msg, rej := process(p, st, in)
		if rej != nil {
			t.Errorf("%s: rejected: %v", in, rej)
			continue
		}
		var m struct{ Type string }
		_ = json.Unmarshal([]byte(in), &m)
		if msg.Type != m.Type || string(msg.Raw) != in {
			t.Errorf("%s: got type %q", in, msg.Type)
		}
	}
	if st.Accepted != uint64(len(valid)) {
		t.Errorf("Accepted = %d", st.Accepted)
	}
}

func TestProcessRejects(t *testing.T) {
	p := newTestPipeline(t, Options{TypeMaxBytes: map[string]int{"ping": 64}})
	st := &ConnState{ConnID: "c1"}
	cases := []struct {
		in, code, path string
		close          protocol.CloseReason
	}{
		{`{"type":"chat","text":`, protocol.CodeInvalidJSON, "", 0},
		{`{"type":"chat","text":"a"} x`, protocol.CodeInvalidJSON, "", 0},
		{`["type","chat"]`, protocol.CodeInvalidMessage, "", 0},
		{`{"text":"a"}`, protocol.CodeInvalidMessage, "/type", 0},
		{`{"type":1}`, protocol.CodeInvalidMessage, "/type", 0},
		{`{"type":"nope"}`, protocol.CodeUnknownType, "/type", 0},
		{`{"type":"chat","text":"a","text":"b"}`, protocol.CodeInvalidMessage, "", 0},
		{`{"type":"chat"}`, protocol.CodeInvalidMessage, "/text", 0},
		{`{"type":"chat","text":5}`, protocol.CodeInvalidMessage, "/text", 0},
		{`{"type":"chat","text":"` + strings.Repeat("é", 4001) + `"}`, protocol.CodeLimitExceeded, "", 0},
		{`{"type":"chat","text":"` + strings.Repeat("a", 4001) + `"}`, protocol.CodeInvalidMessage, "/text", 0},
		{`{"type":"chat","text":"a","extra":1}`, protocol.CodeInvalidMessage, "/extra", 0},
		{`{"type":"subscribe","channel":"bad channel"}`, protocol.CodeInvalidMessage, "/channel", 0},
		{`{"type":"subscribe","channel":"` + strings.Repeat("a", 129) + `"}`, protocol.CodeInvalidMessage, "/channel", 0},
		{`{"type":"subscribe","channel":"a","since":{"offset":-1,"epoch":"e"}}`, protocol.CodeInvalidMessage, "/since/offset", 0},
		{`{"type":"subscribe","channel":"a","since":{"offset":1.5,"epoch":"e"}}`, protocol.CodeInvalidMessage, "/since/offset", 0},
		{`{"type":"subscribe","channel":"a","since":{"offset":1}}`, protocol.CodeInvalidMessage, "/since/epoch", 0},
		{`{"type":"ping","id":{"x":1}}`, protocol.CodeInvalidMessage, "/id", 0},
		{`{"type":"pong","id":"` + strings.Repeat("a", 65) + `"}`, protocol.CodeInvalidMessage, "/id", 0},
		{`{"type":"publish","channel":"a"}`, protocol.CodeInvalidMessage, "/payload", 0},
		{`{"type":"history","channel":"a","limit":0}`, protocol.CodeInvalidMessage, "/limit", 0},
		{`{"type":"ping","id":1,"pad":"` + strings.Repeat("a", 64) + `"}`, protocol.CodeTooLarge, "", protocol.ReasonTooBig},
		{`{"type":"chat","text":"` + strings.Repeat("a", 9000) + `"}`, protocol.CodeTooLarge, "", protocol.ReasonTooBig},
		{strings.Repeat("[", 8000), protocol.CodeLimitExceeded, "", 0},
		{`{"type":"chat","text":"\ud800"}`, protocol.CodeInvalidJSON, "", 0},
	}
	for _, c := range cases {
		_, rej := process(p, st, c.in)
		name := c.in
		if len(name) > 60 {
			name = name[:60]
		}
		if rej == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if rej.Code != c.code || rej.Path != c.path || rej.Close != c.close || !rej.Strike {
			t.Errorf("%s: got %+v, want code %s path %q close %d", name, rej, c.code, c.path, c.close)
		}
		if len(rej.Message) > 80 || strings.Contains(rej.Message, "aaaa") || strings.Contains(rej.Message, "bad channel") {
			t.Errorf("%s: message %q echoes input or is long", name, rej.Message)
		}
	}
}

func TestProcessRef(t *testing.T) {
	p := newTestPipeline(t, Options{})
	st := &ConnState{}
	msg, rej := process(p, st, `{"type":"chat","id":"r-1","text":5}`)
	if rej == nil || string(msg.ID) != `"r-1"` {
		t.Fatalf("got %q %v", msg.ID, rej)
	}
	got := string(EncodeError(rej, msg.ID))
	want := `{"type":"error","code":"invalid_message","message":"expected string, got number","path":"/text","ref":"r-1"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// A long or structured id is never echoed.
	msg, _ = process(p, st, `{"type":"chat","id":{"a":"`+strings.Repeat("x", 100)+`"},"text":5}`)
	if msg.ID != nil {
		t.Errorf("structured id kept as ref: %q", msg.ID)
	}
	// An id is found even when the message is refused by the scanner later on.
	msg, rej = process(p, st, `{"id":12,"type":"chat","text":"a","text":"b"}`)
	if rej == nil || string(msg.ID) != "12" {
		t.Errorf("got %q %v", msg.ID, rej)
	}
}

func TestEncodeError(t *testing.T) {
	cases := []struct {
		r    protocol.Error
		ref  string
		want string
	}{
		{protocol.Error{Code: protocol.CodeRateLimited, Message: "rate limit exceeded", RetryAfter: 1500 * time.Microsecond}, `7`,
			`{"type":"error","code":"rate_limited","message":"rate limit exceeded","ref":7,"retry_after_ms":2}`},
		{protocol.Error{Code: protocol.CodeInvalidMessage, Message: "x\"y\\\n\x01", Path: "/a~1b/é"}, ``,
			`{"type":"error","code":"invalid_message","message":"x\"y\\\n\u0001","path":"/a~1b/é"}`},
		{protocol.Error{Code: protocol.CodeUnknownType, Message: "bad \xff utf8"}, `{"x":1}`,
			`{"type":"error","code":"unknown_type","message":"bad \ufffd utf8"}`},
		{protocol.Error{Code: protocol.CodeInvalidJSON}, `"unterminated`, `{"type":"error","code":"invalid_json"}`},
	}
	for _, c := range cases {
		got := EncodeError(&c.r, []byte(c.ref))
		if string(got) != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
		if !json.Valid(got) {
			t.Errorf("invalid JSON: %s", got)
		}
	}
	r := &protocol.Error{Code: protocol.CodeInvalidMessage, Message: "expected string, got number", Path: "/payload/text"}
	ref := []byte(`"req-1"`)
	if n := testing.AllocsPerRun(100, func() { EncodeError(r, ref) }); n != 1 {
		t.Errorf("EncodeError allocates %.0f times, want 1", n)
	}
}

func TestRateLimits(t *testing.T) {
	fl := &fakeLimiter{}
	now := time.Unix(1000, 0)
	// Per connection: bursts of 3 messages, one more every 250 ms.
	tier := DefaultTier()
	tier.Messages = limit.Limit{Rate: 4, Burst: 3}
	p := newTestPipeline(t, Options{Limiter: fl, Tiers: map[string]Tier{"default": tier},
		AbuseMax: 4, AbuseWindow: 10 * time.Second, Now: func() time.Time { return now }})
	st := &ConnState{ConnID: "c1", User: "alice", IP: "192.0.2.1"}
	ping := `{"type":"ping","id":1}`
	for i := 0; i < 3; i++ {
		if _, rej := process(p, st, ping); rej != nil {
			t.Fatalf("message %d: %v", i, rej)
		}
	}
	var last *protocol.Error
	for i := 0; i < 5; i++ {
		_, last = process(p, st, ping)
		if last == nil || last.Code != protocol.CodeRateLimited || last.RetryAfter != 250*time.Millisecond {
			t.Fatalf("got %+v", last)
		}
		if i < 4 && last.Close != 0 {
			t.Fatalf("closed after %d refusals", i+1)
		}
	}
	if last.Close != protocol.ReasonRateLimit {
		t.Errorf("sustained abuse: Close %v, want rate limit", last.Close)
	}
	if st.RateLimited != 5 || st.Accepted != 3 {
		t.Errorf("counters %+v", st)
	}
	// Another connection of another user is unaffected; budgets are per identity.
	if _, rej := process(p, &ConnState{ConnID: "c2", User: "bob", IP: "192.0.2.2"}, ping); rej != nil {
		t.Errorf("second connection: %v", rej)
	}
	// User and IP budgets are shared through the Limiter; the connection's are
	// not (it holds them itself), and refused messages charge nothing further.
	for _, k := range []string{"pl:u:m:alice", "pl:u:b:alice", "pl:i:m:192.0.2.1", "pl:i:b:192.0.2.1"} {
		if fl.used[k] == 0 {
			t.Errorf("key %s never charged", k)
		}
	}
	if fl.used["pl:u:b:alice"] != 3*len(ping) {
		t.Errorf("user bytes charged %d", fl.used["pl:u:b:alice"])
	}
	for k := range fl.used {
		if strings.HasPrefix(k, "pl:c:") {
			t.Errorf("connection budget %s went to the shared limiter", k)
		}
	}
	// After the window has passed, refusals start counting afresh; the budget
	// has refilled by then.
	now = now.Add(25 * time.Second)
	for i := 0; i < 4; i++ {
		_, last = process(p, st, ping)
	}
	if last == nil || last.Code != protocol.CodeRateLimited || last.Close != 0 {
		t.Errorf("after window: %+v", last)
	}
}

// TestConnBudgetLocal: the connection's byte budget refuses a message that
// would overdraw it, refills at its rate, and a user budget refusal from the
// shared Limiter still applies behind it.
func TestConnBudgetLocal(t *testing.T) {
	now := time.Unix(1000, 0)
	fl := &fakeLimiter{allow: map[string]int{"pl:u:m:": 5}}
	msg := `{"type":"ping","id":"0123456789"}` // 33 bytes
	tier := Tier{Bytes: limit.Limit{Rate: 33, Burst: 100}, UserMessages: limit.Limit{Rate: 1, Burst: 1000}}
	p := newTestPipeline(t, Options{Limiter: fl, MaxBytes: 100, Tiers: map[string]Tier{"default": tier},
		Now: func() time.Time { return now }})
	st := &ConnState{ConnID: "c1", User: "alice"}
	for i := 0; i < 3; i++ {
		if _, rej := process(p, st, msg); rej != nil {
			t.Fatalf("message %d: %v", i, rej)
		}
	}
	_, rej := process(p, st, msg) // 132 bytes > burst 100
	// 99 bytes spent of 100: the next 33 fit once 32 more have refilled (0.97 s).
	if rej == nil || rej.Code != protocol.CodeRateLimited || rej.RetryAfter < 960*time.Millisecond || rej.RetryAfter > time.Second {
		t.Fatalf("overdraw: %+v", rej)
	}
	now = now.Add(time.Second) // 33 bytes refilled
	if _, rej := process(p, st, msg); rej != nil {
		t.Fatalf("after refill: %v", rej)
	}
	now = now.Add(time.Hour)
	// Bytes are back, but the user's message budget (5) is now spent.
	if _, rej := process(p, st, msg); rej != nil {
		t.Fatalf("fifth: %v", rej)
	}
	if _, rej := process(p, st, msg); rej == nil || rej.Code != protocol.CodeRateLimited {
		t.Fatalf("user budget: %+v", rej)
	}
	// A fresh connection of the same user shares the user budget.
	if _, rej := process(p, &ConnState{ConnID: "c2", User: "alice"}, msg); rej == nil || rej.Code != protocol.CodeRateLimited {
		t.Fatalf("user budget on another connection: %+v", rej)
	}
}

func TestAllowGCRAMatchesMemory(t *testing.T) {
	base := time.Unix(0, 0)
	clock := base
	mem := limit.NewMemory(limit.MemoryOptions{SweepInterval: -1, Now: func() time.Time { return clock }})
	defer mem.Close()
	ctx := context.Background()
	limits := []limit.Limit{{Rate: 10, Burst: 5}, {Rate: 0.5, Burst: 1}, {Rate: 1e6, Burst: 0}, {Rate: 0}, {Rate: 3, Burst: 100}}
	for li, l := range limits {
		var tat int64
		key := fmt.Sprint("k", li)
		for step := 0; step < 400; step++ {
			cost := []int{1, 2, 7, 0, 101, 3}[step%6]
			clock = base.Add(time.Duration(step*step%997) * 13 * time.Millisecond)
			ok1, r1, _ := mem.Allow(ctx, key, l, cost)
			ok2, r2 := allowGCRA(&tat, l, cost, int64(clock.Sub(base)))
			if ok1 != ok2 || r1 != r2 {
				t.Fatalf("limit %+v step %d cost %d: memory %v %v, local %v %v", l, step, cost, ok1, r1, ok2, r2)
			}
		}
		base = clock.Add(time.Hour)
	}
}

func TestRateTiers(t *testing.T) {
	fl := &fakeLimiter{}
	now := time.Unix(1000, 0)
	p := newTestPipeline(t, Options{Limiter: fl, Now: func() time.Time { return now }, Tiers: map[string]Tier{
		"default": {Messages: limit.Limit{Rate: 1, Burst: 1}},
		"pro":     {Messages: limit.Limit{Rate: 1, Burst: 3}},
	}})
	count := func(st *ConnState) int {
		n := 0
		for i := 0; i < 5; i++ {
			if _, rej := process(p, st, `{"type":"ping"}`); rej == nil {
				n++
			}
		}
		return n
	}
	if n := count(&ConnState{ConnID: "a"}); n != 1 {
		t.Errorf("default tier passed %d", n)
	}
	if n := count(&ConnState{ConnID: "b", Tier: "pro"}); n != 3 {
		t.Errorf("pro tier passed %d", n)
	}
	if n := count(&ConnState{ConnID: "c", Tier: "unknown"}); n != 1 {
		t.Errorf("unknown tier passed %d", n)
	}
}

func TestRateFailOpenClosed(t *testing.T) {
	down := errors.New("store down")
	closed := newTestPipeline(t, Options{Limiter: &fakeLimiter{err: down}})
	_, rej := process(closed, &ConnState{ConnID: "a", User: "u"}, `{"type":"ping"}`)
	if rej == nil || rej.Code != protocol.CodeUnavailable || rej.Strike || rej.RetryAfter != time.Second {
		t.Errorf("fail closed: %+v", rej)
	}
	open := newTestPipeline(t, Options{Limiter: &fakeLimiter{err: down}, FailOpen: true})
	if _, rej := process(open, &ConnState{ConnID: "a", User: "u"}, `{"type":"ping"}`); rej != nil {
		t.Errorf("fail open: %v", rej)
	}
	// The connection's own budget needs no store: it still holds with the store
	// down, fail open or not.
	strict := newTestPipeline(t, Options{Limiter: &fakeLimiter{err: down}, FailOpen: true,
		Tiers: map[string]Tier{"default": {Messages: limit.Limit{Rate: 1, Burst: 2}}}})
	st := &ConnState{ConnID: "a", User: "u"}
	n := 0
	for i := 0; i < 10; i++ {
		if _, rej := process(strict, st, `{"type":"ping"}`); rej == nil {
			n++
		}
	}
	if n != 2 {
		t.Errorf("store down: connection budget let %d of 10 through, want 2", n)
	}
}

type testVerifier struct {
	replace []byte
	newType string
	err     error
}

func (v testVerifier) Open(_ context.Context, _ *ConnState, msg *Message) error {
	if v.err != nil {
		return v.err
	}
	if v.replace != nil {
		msg.Raw = v.replace
	}
	if v.newType != "" {
		msg.Type = v.newType
	}
	return nil
}

func TestVerifier(t *testing.T) {
	st := &ConnState{}
	signed := `{"type":"signed","body":"x","sig":"y"}`
	p := newTestPipeline(t, Options{Verifier: testVerifier{replace: []byte(`{"type":"chat","id":3,"text":"hi"}`)}})
	msg, rej := process(p, st, signed)
	if rej != nil || msg.Type != "chat" || string(msg.ID) != "3" {
		t.Fatalf("replace: %+v %v", msg, rej)
	}
	p = newTestPipeline(t, Options{Verifier: testVerifier{replace: []byte(`{"type":"chat","text":1}`)}})
	if _, rej = process(p, st, signed); rej == nil || rej.Path != "/text" {
		t.Errorf("replaced body is validated: %v", rej)
	}
	p = newTestPipeline(t, Options{Verifier: testVerifier{replace: []byte(strings.Repeat("[", 100))}})
	if _, rej = process(p, st, signed); rej == nil || rej.Code != protocol.CodeLimitExceeded {
		t.Errorf("replaced body is scanned: %v", rej)
	}
	p = newTestPipeline(t, Options{Verifier: testVerifier{err: errors.New("bad signature")}})
	if _, rej = process(p, st, `{"type":"ping"}`); rej == nil || rej.Code != protocol.CodeInvalidMessage || !rej.Strike || strings.Contains(rej.Message, "bad signature") {
		t.Errorf("verifier error: %+v", rej)
	}
	custom := &protocol.Error{Code: "replayed", Message: "replayed", Strike: true}
	p = newTestPipeline(t, Options{Verifier: testVerifier{err: custom}})
	if _, rej = process(p, st, `{"type":"ping"}`); rej != custom {
		t.Errorf("verifier *protocol.Error not passed through: %+v", rej)
	}
	if _, rej = process(newTestPipeline(t, Options{}), st, signed); rej == nil || rej.Code != protocol.CodeUnknownType {
		t.Errorf("without verifier: %v", rej)
	}
}

func TestSetRegistry(t *testing.T) {
	p := newTestPipeline(t, Options{})
	st := &ConnState{}
	if _, rej := process(p, st, `{"type":"vote","choice":"a"}`); rej == nil || rej.Code != protocol.CodeUnknownType {
		t.Fatalf("before: %v", rej)
	}
	reg, err := schema.New(schema.Options{Inline: map[string]string{
		"vote": `{"type":"object","properties":{"type":{"const":"vote"},"choice":{"enum":["a","b"]}},"required":["choice"]}`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	p.SetRegistry(reg)
	if msg, rej := process(p, st, `{"type":"vote","choice":"a"}`); rej != nil || msg.Type != "vote" {
		t.Fatalf("after: %v", rej)
	}
	if _, rej := process(p, st, `{"type":"vote","choice":"c"}`); rej == nil || rej.Path != "/choice" {
		t.Fatalf("after: %v", rej)
	}
	if _, rej := process(p, st, `{"type":"ping"}`); rej != nil {
		t.Fatalf("built-ins kept: %v", rej)
	}
}

func TestOptionsValidate(t *testing.T) {
	bad := []Options{
		{MaxBytes: -1},
		{MaxDepth: 1000},
		{TypeMaxBytes: map[string]int{"chat": 1 << 20}},
		{Tiers: map[string]Tier{"x": {Bytes: limit.Limit{Rate: 10, Burst: 100}}}},
		{Tiers: map[string]Tier{"x": {Messages: limit.Limit{Rate: 10}}}},
		{Tiers: map[string]Tier{"x": {IPMessages: limit.Limit{Rate: -1}}}},
	}
	for _, o := range bad {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
	if _, err := New(Options{}); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	decodeAgrees(t, []byte(`{"a":[1,-2.5e3,"x\"y\\",true,false,null,{}],"b":{"c":[]},"\u00e9":"\ud83d\ude00"}`))
}

func TestConcurrentProcess(t *testing.T) {
	p := newTestPipeline(t, Options{Limiter: &fakeLimiter{}})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			st := &ConnState{ConnID: string(rune('a' + g))}
			for i := 0; i < 50; i++ {
				in := chatMessage(200)
				if i%2 == 1 {
					in = `{"type":"chat","text":1}`
				}
				_, _ = process(p, st, in)
			}
		})
	}
	wg.Wait()
}

// TestRateUsesArrivalTimeAndFollowsReload: a ConnState's Now replaces the
// Options clock, and a connection moved to a new Pipeline (a reload) gets the
// new Pipeline's tiers, keeping its spent budget.
func TestRateUsesArrivalTimeAndFollowsReload(t *testing.T) {
	never := func() time.Time { t.Fatal("Options.Now read although ConnState.Now was set"); return time.Time{} }
	one := limit.Limit{Rate: 1, Burst: 1}
	three := limit.Limit{Rate: 1, Burst: 3}
	a := newTestPipeline(t, Options{Limiter: &fakeLimiter{}, Now: never, Tiers: map[string]Tier{"default": {Messages: one}}})
	b := newTestPipeline(t, Options{Limiter: &fakeLimiter{}, Now: never, Tiers: map[string]Tier{"default": {Messages: three}}})
	st := &ConnState{ConnID: "c", Now: time.Unix(1000, 0)}
	ping := []byte(`{"type":"ping"}`)
	ctx := context.Background()
	if _, rej := a.Process(ctx, st, ping); rej != nil {
		t.Fatal(rej)
	}
	if _, rej := a.Process(ctx, st, ping); rej == nil || rej.RetryAfter != time.Second {
		t.Fatalf("second under burst 1: %+v", rej)
	}
	// Same instant, new pipeline: burst 3 of which 1 is spent.
	for i := 0; i < 2; i++ {
		if _, rej := b.Process(ctx, st, ping); rej != nil {
			t.Fatalf("after reload, message %d: %v", i, rej)
		}
	}
	if _, rej := b.Process(ctx, st, ping); rej == nil {
		t.Fatal("burst 3 exceeded after reload")
	}
	st.Now = st.Now.Add(time.Second)
	if _, rej := b.Process(ctx, st, ping); rej != nil {
		t.Fatalf("a second later: %v", rej)
	}
}
