package redis

import (
	"strings"
	"testing"
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
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		ev, err := decodeEvent("ch", payload)
		if err != nil {
			return
		}
		switch ev.kind {
		case evPublication:
			if ev.pub.Offset == 0 || ev.pub.Epoch == "" || strings.Contains(ev.pub.Epoch, ",") {
				t.Fatalf("accepted bad publication %+v", ev.pub)
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
	if err != nil || ev.pub.Offset != 7 || ev.pub.Epoch != "EP" || ev.pub.From != "a,b,c" ||
		string(ev.pub.Data) != "[1,2]" || ev.pub.Time.UnixMilli() != 1700000000123 || ev.pub.Channel != "room" {
		t.Fatalf("%+v %v", ev, err)
	}
	ev, err = decodeEvent("room", "l3,c,1user")
	if err != nil || ev.kind != evLeave || ev.info.ConnID != "c,1" || ev.info.User != "user" {
		t.Fatalf("%+v %v", ev, err)
	}
}
