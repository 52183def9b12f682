package pipeline

import (
	"testing"
	"time"
	"unsafe"
)

// The limiter keys are rebuilt whenever what they derive from changes: the
// prefix (a reload), the user (a re-authentication), the IP; and never
// otherwise (no allocation per message).
func TestLimiterKeysFollowIdentity(t *testing.T) {
	st := &ConnState{User: "alice", IP: "10.0.0.1"}
	k := st.limiterKeys("p:")
	if k.um != "p:u:m:alice" || k.ub != "p:u:b:alice" || k.im != "p:i:m:10.0.0.1" || k.ib != "p:i:b:10.0.0.1" {
		t.Fatalf("keys = %+v", *k)
	}
	if n := testing.AllocsPerRun(100, func() { st.limiterKeys("p:") }); n != 0 {
		t.Fatalf("unchanged keys: %v allocations per call, want 0", n)
	}
	st.User = "alicia"
	if k := st.limiterKeys("p:"); k.um != "p:u:m:alicia" || k.ub != "p:u:b:alicia" {
		t.Fatalf("after user change: %+v", *k)
	}
	if k := st.limiterKeys("q:"); k.um != "q:u:m:alicia" || k.im != "q:i:m:10.0.0.1" {
		t.Fatalf("after prefix change: %+v", *k)
	}
	st.User, st.IP = "", "10.0.0.2"
	if k := st.limiterKeys("q:"); k.um != "" || k.ub != "" || k.im != "q:i:m:10.0.0.2" {
		t.Fatalf("anonymous: %+v", *k)
	}
	// A user whose name spells another key's tail is not confused with it.
	st.User, st.IP = "m:x", ""
	k = st.limiterKeys("")
	if k.um != "u:m:m:x" || k.im != "" {
		t.Fatalf("keys = %+v", *k)
	}
	st.User = "x"
	if k := st.limiterKeys(""); k.um != "u:m:x" {
		t.Fatalf("after change to a suffix: %+v", *k)
	}
}

// The abuse window and the budgets keep time as nanoseconds since a process
// epoch; a clock that steps back restarts the window, as before.
func TestAbuseWindowClock(t *testing.T) {
	st := &ConnState{}
	t0 := time.Now()
	for i := range 5 {
		if got := st.abuseHit(t0, time.Second); got != float64(i+1) {
			t.Fatalf("hit %d = %v", i+1, got)
		}
	}
	// Half-way into the next window: half the previous bucket counts.
	if got := st.abuseHit(t0.Add(1500*time.Millisecond), time.Second); got != 5*0.5+1 {
		t.Fatalf("next window = %v, want 3.5", got)
	}
	if got := st.abuseHit(t0.Add(-time.Hour), time.Second); got != 1 {
		t.Fatalf("after a step back = %v, want 1", got)
	}
	if got := st.abuseHit(t0.Add(time.Hour), time.Second); got != 1 {
		t.Fatalf("two windows later = %v, want 1", got)
	}
}

// Every open connection's session holds a ConnState.
func TestConnStateSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit platforms")
	}
	if n := unsafe.Sizeof(ConnState{}); n > 248 {
		t.Fatalf("ConnState is %d bytes, want at most 248", n)
	}
}

// The tier cache follows ConnState.Tier and the Pipeline (a reload), and an
// unknown name gets the default tier.
func TestTierCacheFollowsName(t *testing.T) {
	pro, free := DefaultTier(), DefaultTier()
	pro.Messages.Rate, free.Messages.Rate = 100, 1
	p, err := New(Options{Tiers: map[string]Tier{"pro": pro, "free": free}})
	if err != nil {
		t.Fatal(err)
	}
	st := &ConnState{Tier: "pro"}
	if got := st.tierOf(p); got.Messages.Rate != 100 {
		t.Fatalf("pro: rate %v", got.Messages.Rate)
	}
	if got := st.tierOf(p); got != &p.tiers["pro"].Tier {
		t.Fatal("cached tier is not the pipeline's")
	}
	st.Tier = "free"
	if got := st.tierOf(p); got.Messages.Rate != 1 {
		t.Fatalf("free: rate %v", got.Messages.Rate)
	}
	st.Tier = "gone"
	if got := st.tierOf(p); got != &p.tiers[DefaultTierName].Tier {
		t.Fatal("an unknown tier did not get the default")
	}
	p2, err := New(Options{Tiers: map[string]Tier{"free": pro}})
	if err != nil {
		t.Fatal(err)
	}
	st.Tier = "free"
	if got := st.tierOf(p2); got.Messages.Rate != 100 {
		t.Fatalf("after a reload: rate %v", got.Messages.Rate)
	}
}
