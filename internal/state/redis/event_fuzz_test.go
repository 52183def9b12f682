package redis

import (
	"strings"
	"testing"

	"github.com/wsgate/wsgate/internal/state/broker"
)

// FuzzDecodeEvent: pub/sub payloads come from Redis, which anyone with access
// to it can write to; decoding must never panic and must round-trip what the
// scripts produce.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		"p1,abcdEFGH,1700000000000,5,alice{\"n\":1}",
		"p12,e,0,0,",
		"j2,c1bob",
		"l0,",
		"p1,e,1,99,x",
		"p18446744073709551616,e,1,0,",
		"x",
		"",
		"p1,,1,0,",
		"j-1,",
		"b5,EP,1700000000000,2,1,a3,[1]0,",
		"b1,e,1,1,0,0,",
		"b1,e,1,3,0,0,",
		"b18446744073709551615,e,1,2,0,0,0,0,",
		"b1,e,1,0,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		ev, err := decodeEvent("ch", payload)
		if err != nil {
			return
		}
		switch ev.kind {
		case evPublication, evBatch:
			if len(ev.pubs) == 0 || (ev.kind == evPublication && len(ev.pubs) != 1) {
				t.Fatalf("%q: %d publications", ev.kind, len(ev.pubs))
			}
			for i, p := range ev.pubs {
				if p.Offset == 0 || p.Epoch == "" || strings.Contains(p.Epoch, ",") || p.Offset != ev.pubs[0].Offset+uint64(i) {
					t.Fatalf("accepted bad publication %+v", p)
				}
			}
		case evJoin, evLeave:
			if ev.info.ConnID == "" {
				t.Fatal("accepted empty conn id")
			}
		default:
			t.Fatalf("unknown kind %q accepted", ev.kind)
		}
	})
}

func TestDecodeEventRoundTrip(t *testing.T) {
	ev, err := decodeEvent("room", "p7,EP,1700000000123,5,a,b,c[1,2]")
	if err != nil || len(ev.pubs) != 1 {
		t.Fatalf("%+v %v", ev, err)
	}
	if p := ev.pubs[0]; p.Offset != 7 || p.Epoch != "EP" || p.From != "a,b,c" ||
		string(p.Data) != "[1,2]" || p.Time.UnixMilli() != 1700000000123 || p.Channel != "room" {
		t.Fatalf("%+v", p)
	}
	ev, err = decodeEvent("room", "b9,EP,1700000000123,3,1,a5,[1,2]0,2,{}3,b,c0,")
	if err != nil || ev.kind != evBatch || len(ev.pubs) != 3 {
		t.Fatalf("%+v %v", ev, err)
	}
	for i, want := range []broker.Publication{{Offset: 9, From: "a", Data: []byte("[1,2]")}, {Offset: 10, Data: []byte("{}")}, {Offset: 11, From: "b,c", Data: []byte{}}} {
		p := ev.pubs[i]
		if p.Offset != want.Offset || p.From != want.From || string(p.Data) != string(want.Data) || p.Epoch != "EP" || p.Channel != "room" ||
			p.Time.UnixMilli() != 1700000000123 {
			t.Fatalf("pub %d: %+v, want %+v", i, p, want)
		}
	}
	ev, err = decodeEvent("room", "l3,c,1user")
	if err != nil || ev.kind != evLeave || ev.info.ConnID != "c,1" || ev.info.User != "user" {
		t.Fatalf("%+v %v", ev, err)
	}
}
