package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Checkpoints reach a webhook (a 5xx is retried), each one verifiable with
// the public key, including the last one written on Close.
func TestShipWebhook(t *testing.T) {
	got := make(chan CheckpointInfo, 100)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		var c CheckpointInfo
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &c); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		got <- c
	}))
	defer srv.Close()
	sh, err := NewShipper(ShipOptions{Webhook: srv.URL, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	key := testKey(t)
	var buf bytes.Buffer
	l, err := New(Options{Output: &buf, Chain: true, CheckpointKey: key, CheckpointEvery: 3, CheckpointInterval: -1, OnCheckpoint: sh.Send}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 7 {
		l.Log(Event{Event: Kick})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sh.Close(); err != nil {
		t.Fatal(err)
	}
	n := int(l.Stats().Checkpoints)
	if n < 3 || len(got) != n {
		t.Fatalf("%d checkpoints written, %d shipped; stats %+v", n, len(got), sh.Stats())
	}
	if s := sh.Stats(); s.Delivered != uint64(n) || s.Failed != 0 || s.Dropped != 0 || calls.Load() != int32(n+1) {
		t.Fatalf("stats %+v, %d calls", s, calls.Load())
	}
	var last CheckpointInfo
	for range n {
		last = <-got
		sig, _ := base64.StdEncoding.DecodeString(last.Sig)
		if !ed25519.Verify(pub(key), CheckpointMessage(last.Seq, last.Hash, last.TS), sig) || last.KeyID != KeyID(pub(key)) {
			t.Fatalf("shipped checkpoint does not verify: %+v", last)
		}
		if !strings.Contains(buf.String(), `"detail":{"seq":`+jsonNum(last.Seq)+`,"hash":"`+last.Hash+`"`) {
			t.Fatalf("shipped checkpoint %+v not in the log", last)
		}
	}
	if last.Seq != uint64(1+7+n-1) { // anchor + 7 events + the checkpoints before the last
		t.Fatalf("last shipped checkpoint covers seq %d, want the final head", last.Seq)
	}
	sh.Send(last)
	if sh.Stats().Dropped != 1 {
		t.Fatal("Send after Close not counted as dropped")
	}
}

func jsonNum(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// Checkpoints reach syslog over UDP as one line each.
func TestShipSyslog(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	sh, err := NewShipper(ShipOptions{Syslog: "udp://" + pc.LocalAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	sh.Send(CheckpointInfo{TS: "2026-12-06T15:00:04Z", Seq: 3, Hash: strings.Repeat("ab", 32), KeyID: "fe812c12f3ab4ce6", Sig: "c2ln", File: "audit.log"})
	if err := pc.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2048)
	n, _, err := pc.ReadFrom(b)
	if err != nil {
		t.Fatalf("no syslog datagram within 10s: %v", err)
	}
	msg := string(b[:n])
	for _, want := range []string{"<37>1 ", " wsgate-audit ", "checkpoint - seq=3 hash=" + strings.Repeat("ab", 32) + " key_id=fe812c12f3ab4ce6 ts=2026-12-06T15:00:04Z file=audit.log sig=c2ln\n"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("syslog line %q lacks %q", msg, want)
		}
	}
	sh.Close()
	if s := sh.Stats(); s.Delivered != 1 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestShipOptions(t *testing.T) {
	for _, o := range []ShipOptions{{}, {Webhook: "ftp://x/"}, {Webhook: "http://"}, {Syslog: "udp://"}, {Syslog: "file:///x"}, {Syslog: "unix://"}} {
		if _, err := NewShipper(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	// A receiver refusing with 4xx is a failure, not retried.
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	sh, err := NewShipper(ShipOptions{Webhook: srv.URL, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sh.Send(CheckpointInfo{Seq: 1})
	sh.Close()
	if s := sh.Stats(); s.Failed != 1 || calls.Load() != 1 {
		t.Fatalf("stats %+v after %d calls", s, calls.Load())
	}
}
