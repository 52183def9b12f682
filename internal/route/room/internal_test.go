package room

import (
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/wsgate/wsgate/internal/conn/protocol"
)

type recClient struct {
	mu   sync.Mutex
	msgs []string
}

func (c *recClient) ConnID() string         { return "x" }
func (c *recClient) User() string           { return "u" }
func (c *recClient) Claims() map[string]any { return nil }
func (c *recClient) Send(b []byte) error {
	c.mu.Lock()
	c.msgs = append(c.msgs, string(b))
	c.mu.Unlock()
	return nil
}

func TestGoLiveDedupAndOverflow(t *testing.T) {
	// Buffered 3..6 while the replay covered up to 4: 5 and 6 go out once.
	c := &recClient{}
	s := &subscription{client: c, channel: "a:b"}
	for off := uint64(3); off <= 6; off++ {
		s.deliver(off, "E", []byte(strconv.FormatUint(off, 10)), 10)
	}
	s.deliverEvent([]byte("j"), 10)
	s.goLive(posLike{4, "E"}, func(uint64, string) { t.Fatal("no gap expected") })
	s.deliver(6, "E", []byte("dup"), 10)
	s.deliver(7, "E", []byte("7"), 10)
	if got := strings.Join(c.msgs, ","); got != "5,6,j,7" {
		t.Fatalf("got %s", got)
	}

	// Overflow: a buffer of 2 keeps 9,10 of 5..10; replay covered 4, so 5..8 are
	// lost and the client learns it resumes gap-free after 8.
	c = &recClient{}
	s = &subscription{client: c, channel: "a:b"}
	for off := uint64(5); off <= 10; off++ {
		s.deliver(off, "E", []byte(strconv.FormatUint(off, 10)), 2)
	}
	var failedAt uint64
	s.goLive(posLike{4, "E"}, func(off uint64, _ string) { failedAt = off; c.Send([]byte("RF")) })
	if got := strings.Join(c.msgs, ","); failedAt != 8 || got != "RF,9,10" {
		t.Fatalf("failed at %d, got %s", failedAt, got)
	}
}

// A live subscription turns every break in its stream into recovery_failed before
// the message: a skipped offset, a new epoch (the old one's tail may be lost),
// a new epoch that does not start at 1. The first message of a stream the client
// knew nothing of (empty epoch) starts at 1 without notice (issue 16, defect 3).
func TestLiveGapsBecomeRecoveryFailed(t *testing.T) {
	c := &recClient{}
	s := &subscription{client: c, channel: "a:b"}
	s.goLive(posLike{0, ""}, func(uint64, string) { t.Fatal("no gap expected") })
	steps := []struct {
		off   uint64
		epoch string
		gap   bool
	}{
		{1, "E", false}, {2, "E", false}, {2, "E", false}, {5, "E", true}, {6, "E", false},
		{1, "F", true}, {3, "G", true}, {4, "G", false},
	}
	for _, st := range steps {
		if gap := s.deliver(st.off, st.epoch, []byte(st.epoch+strconv.FormatUint(st.off, 10)), 10); gap != st.gap {
			t.Errorf("%s/%d: gap %v, want %v", st.epoch, st.off, gap, st.gap)
		}
	}
	got := strings.Join(c.msgs, ",")
	rf := func(off, epoch string) string {
		return `{"type":"recovery_failed","channel":"a:b","offset":` + off + `,"epoch":"` + epoch + `"}`
	}
	want := strings.Join([]string{"E1", "E2", rf("4", "E"), "E5", "E6", rf("0", "F"), "F1", rf("2", "G"), "G3", "G4"}, ",")
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// Buffered entries that do not continue from the subscribe position get the
	// notice too (a node that could not fill its gap from history).
	c = &recClient{}
	s = &subscription{client: c, channel: "a:b"}
	s.deliver(9, "E", []byte("9"), 10)
	var failedAt uint64
	s.goLive(posLike{4, "E"}, func(off uint64, _ string) { failedAt = off; _ = c.Send([]byte("RF")) })
	if got := strings.Join(c.msgs, ","); failedAt != 8 || got != "RF,9" {
		t.Fatalf("failed at %d, got %s", failedAt, got)
	}
}

func TestParseChannel(t *testing.T) {
	good := []string{"chat:lobby", "lobby", "a:b@c/d=e+f.g-h_i", "x:" + strings.Repeat("a", 126)}
	bad := []string{"", ":", "chat:", ":x", "a:b:c", "chat:lob by", "chat:é", "x:" + strings.Repeat("a", 127), "ch@t:x", "a\x00:b"}
	for _, c := range good {
		if _, _, ok := parseChannel(c); !ok {
			t.Errorf("rejected %q", c)
		}
	}
	for _, c := range bad {
		if _, _, ok := parseChannel(c); ok {
			t.Errorf("accepted %q", c)
		}
	}
}

func TestMatchPattern(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"chat:*", "chat:lobby", true},
		{"chat:*", "chat:", true},
		{"chat:*", "news:x", false},
		{"*", "lobby", true},
		{"*", "chat:lobby", false},
		{"*:*", "chat:lobby", true},
		{"chat:room.*", "chat:room.1", true},
		{"chat:room.*", "chat:roomx1", false},
		{"chat:lobby", "chat:lobby", true},
		{"chat:lobby", "chat:lobby2", false},
		{"c*t:*y", "chat:lobby", true},
		{"*a*a*a*a*b", strings.Repeat("a", 100), false},
	} {
		if got := matchPattern(tc.p, tc.s); got != tc.want {
			t.Errorf("match(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}

// refMatch is the specification of matchPattern as a regular expression.
func refMatch(p, s string) bool {
	parts := strings.Split(p, "*")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return regexp.MustCompile(`^(?s:` + strings.Join(parts, `[^:]*`) + `)$`).MatchString(s)
}

func TestAllowedClaimShapes(t *testing.T) {
	for _, claims := range []map[string]any{
		{"channels": map[string]any{"sub": []any{"x", 3, "chat:*"}}},
		{"channels": map[string]any{"sub": []string{"chat:*"}}},
		{"channels": map[string]any{"sub": "chat:*"}},
	} {
		if !allowed(claims, "channels", "sub", "chat:a") {
			t.Errorf("denied %v", claims)
		}
	}
	for _, claims := range []map[string]any{nil, {"channels": "chat:*"}, {"channels": map[string]any{"pub": []any{"chat:*"}}}} {
		if allowed(claims, "channels", "sub", "chat:a") {
			t.Errorf("allowed %v", claims)
		}
	}
}

func TestErrorReply(t *testing.T) {
	e := &protocol.Error{Code: protocol.CodePermissionDenied, Message: `say "no"`, Ref: []byte(`"r1"`), Err: errors.New("detail")}
	if got := string(e.Encode()); got != `{"type":"error","code":"permission_denied","message":"say \"no\"","ref":"r1"}` {
		t.Fatal(got)
	}
	if strings.Contains(string(e.Encode()), "detail") {
		t.Fatal("internal detail leaked")
	}
}

// FuzzDecodeString: the no-escape fast path of decodeString agrees with
// encoding/json on every valid JSON value (the room's input has been validated).
func FuzzDecodeString(f *testing.F) {
	for _, s := range []string{`"plain"`, `"esc\"aped"`, `"\u00e9"`, `"é"`, "\"\xff\"", `5`, `null`, `""`, `"a\\b"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return
		}
		var got, want string
		gerr := decodeString(raw, &got)
		werr := json.Unmarshal(raw, &want)
		if (gerr == nil) != (werr == nil) || got != want {
			t.Fatalf("%q: got %q, %v; encoding/json %q, %v", raw, got, gerr, want, werr)
		}
	})
}

type idClient struct {
	recClient
	id string
}

func (c *idClient) ConnID() string { return c.id }

// Every subscription to a channel shares the hub's copy of its name, and the
// subscription stays in its 80-byte size class (one of each per subscriber).
func TestSubscriptionsShareChannelName(t *testing.T) {
	h := newHub()
	var subs []*subscription
	for i := range 3 {
		name := strings.Clone("chat:room") // as decoded from each subscribe
		sub := &subscription{client: &idClient{id: strconv.Itoa(i)}, channel: name}
		h.add(sub)
		subs = append(subs, sub)
	}
	for _, sub := range subs[1:] {
		if unsafe.StringData(sub.channel) != unsafe.StringData(subs[0].channel) {
			t.Fatal("a subscription keeps its own copy of the channel name")
		}
	}
	if n := h.count("chat:room"); n != 3 {
		t.Fatalf("count = %d, want 3", n)
	}
	for i, sub := range subs {
		if left := h.remove(sub); left != 2-i {
			t.Fatalf("remove %d left %d", i, left)
		}
	}
	if unsafe.Sizeof(uintptr(0)) == 8 && unsafe.Sizeof(subscription{}) > 80 {
		t.Fatalf("subscription is %d bytes, over its 80-byte size class", unsafe.Sizeof(subscription{}))
	}
}
