package metrics_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/observe/metrics"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/fakeclock"
)

func TestSeriesPerSecond(t *testing.T) {
	c := fakeclock.New(time.Unix(1_700_000_000, 0))
	s := metrics.NewSeries(c.Now)
	s.ConnOpened()
	s.ConnOpened()
	s.Handshake(true, "")
	s.Handshake(false, "origin")
	c.Advance(2 * time.Second)
	s.ConnClosed()
	s.Handshake(false, "rate")
	s.Handshake(false, "rate")
	c.Advance(time.Second)

	snap := s.Last(5 * time.Second)
	if len(snap.Points) != 5 || snap.Now != 1_700_000_003 || snap.Connections != 1 {
		t.Fatalf("snapshot = %+v", snap)
	}
	wantConns := []int64{0, 2, 2, 1, 1}
	wantRej := []uint32{0, 1, 0, 2, 0}
	for i, p := range snap.Points {
		if p.T != 1_699_999_999+int64(i) || p.Connections != wantConns[i] || p.Rejected != wantRej[i] {
			t.Errorf("point %d = %+v, want conns %d rejected %d", i, p, wantConns[i], wantRej[i])
		}
	}
	if snap.Reasons["rate"] != 2 || snap.Reasons["origin"] != 1 {
		t.Errorf("reasons = %v", snap.Reasons)
	}
	if _, err := json.Marshal(s.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Snapshot().Points); n != 900 {
		t.Fatalf("full snapshot has %d points, want 900", n)
	}
}

func TestSeriesForgetsOldAndBoundsReasons(t *testing.T) {
	c := fakeclock.New(time.Unix(1_700_000_000, 0))
	s := metrics.NewSeries(c.Now)
	for i := range 100 {
		s.Handshake(false, fmt.Sprintf("r%d", i))
	}
	snap := s.Last(time.Second)
	if len(snap.Points[0].Reasons) > 17 || snap.Points[0].Reasons["other"] == 0 {
		t.Fatalf("reasons not bounded: %d", len(snap.Points[0].Reasons))
	}
	c.Advance(16 * time.Minute)
	s.Handshake(true, "")
	snap = s.Snapshot()
	var rejected uint32
	for _, p := range snap.Points {
		rejected += p.Rejected
	}
	if rejected != 0 || len(snap.Reasons) != 0 {
		t.Fatalf("16-minute-old data still present: %d rejected, %v", rejected, snap.Reasons)
	}
	if snap.Points[len(snap.Points)-1].Accepted != 1 {
		t.Fatal("latest point missing")
	}
}
