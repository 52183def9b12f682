package hook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// stepBackend answers each call with the next error from errs (nil = allow).
type stepBackend struct {
	errs  chan error
	calls int
}

func (b *stepBackend) Call(_ context.Context, _ string, _, out any) error {
	b.calls++
	err := <-b.errs
	if err == nil {
		*out.(*SubscribeReply) = SubscribeReply{Allow: true}
	}
	return err
}

func TestBreakerOpensAndHalfOpenTrialCloses(t *testing.T) {
	b := &stepBackend{errs: make(chan error, 10)}
	h, err := New(KindSubscribe, b, Options{Breaker: Breaker{Failures: 2, Cooldown: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	b.errs <- boom
	b.errs <- boom
	for range 2 {
		if _, err := h.Subscribe(context.Background(), SubscribeEvent{}); !errors.Is(err, boom) {
			t.Fatalf("err %v, want boom", err)
		}
	}
	if _, err := h.Subscribe(context.Background(), SubscribeEvent{}); !errors.Is(err, ErrOpen) || b.calls != 2 {
		t.Fatalf("err %v after %d calls, want ErrOpen after 2", err, b.calls)
	}
	// The cooldown passes: one trial call; its success closes the circuit.
	h.mu.Lock()
	h.openUntil = time.Now().Add(-time.Second)
	h.mu.Unlock()
	if st := h.State(); st != "half_open" {
		t.Fatalf("state %s, want half_open", st)
	}
	b.errs <- nil
	if r, err := h.Subscribe(context.Background(), SubscribeEvent{}); err != nil || !r.Allow {
		t.Fatalf("trial: %v %v", r, err)
	}
	if st := h.State(); st != "closed" {
		t.Fatalf("state %s after a good trial, want closed", st)
	}
}

// blockBackend holds every call until release is closed.
type blockBackend struct{ entered, release chan struct{} }

func (b blockBackend) Call(ctx context.Context, _ string, _, _ any) error {
	b.entered <- struct{}{}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestBusyRefusesAtOnceAndTimeout(t *testing.T) {
	bb := blockBackend{entered: make(chan struct{}, 2), release: make(chan struct{})}
	h, _ := New(KindSubscribe, bb, Options{MaxConcurrency: 1, Timeout: time.Hour})
	done := make(chan error, 1)
	go func() { _, err := h.Subscribe(context.Background(), SubscribeEvent{}); done <- err }()
	select {
	case <-bb.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("first call did not reach the backend within 10s")
	}
	if _, err := h.Subscribe(context.Background(), SubscribeEvent{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second call: %v, want ErrBusy", err)
	}
	close(bb.release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("first call did not return within 10s of release")
	}
	h2, _ := New(KindSubscribe, blockBackend{entered: make(chan struct{}, 1), release: make(chan struct{})}, Options{Timeout: 10 * time.Millisecond})
	if _, err := h2.Subscribe(context.Background(), SubscribeEvent{}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v, want ErrTimeout", err)
	}
}

func TestDecodeReplyStrict(t *testing.T) {
	for _, tc := range []struct {
		kind, body string
		ok         bool
	}{
		{KindSubscribe, `{"allow":true}`, true},
		{KindSubscribe, `{"allow":false,"reason":"no"}`, true},
		{KindSubscribe, `{}`, false},
		{KindSubscribe, `{"allow":"yes"}`, false},
		{KindSubscribe, `{"allow":true,"x":1}`, false},
		{KindSubscribe, `{"allow":true} {}`, false},
		{KindSubscribe, `{"allow":true,"tier":"vip"}`, false},
		{KindSubscribe, `{"allow":true,"payload":1}`, false},
		{KindPublish, `{"allow":true,"payload":{"a":1}}`, true},
		{KindPublish, `{"allow":true,"payload":null}`, false},
		{KindPublish, `{"allow":true,"channels":{}}`, false},
		{KindConnect, `{"allow":true,"tier":"vip","channels":{"sub":["a:*"]}}`, true},
		{KindConnect, `{"allow":true,"tier":"v i p"}`, false},
		{KindConnect, `{"allow":true,"payload":{}}`, false},
	} {
		var err error
		switch tc.kind {
		case KindSubscribe:
			err = decodeReply(tc.kind, []byte(tc.body), &SubscribeReply{})
		case KindPublish:
			err = decodeReply(tc.kind, []byte(tc.body), &PublishReply{})
		case KindConnect:
			var r ConnectReply
			if err = decodeReply(tc.kind, []byte(tc.body), &r); err == nil {
				err = r.validate()
			}
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s %s: err %v, want ok=%v", tc.kind, tc.body, err, tc.ok)
		}
	}
}

func TestHTTPSignedAndCapped(t *testing.T) {
	var got http.Header
	var gotBody []byte
	big := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		gotBody, _ = io.ReadAll(r.Body)
		if big {
			_, _ = w.Write(bytes.Repeat([]byte(" "), 200))
		}
		_, _ = io.WriteString(w, `{"allow":true,"payload":{"n":2}}`)
	}))
	defer srv.Close()
	b, err := NewHTTP(HTTPOptions{URL: srv.URL, Key: testKey, MaxResponseBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := New(KindPublish, b, Options{})
	r, err := h.Publish(context.Background(), PublishEvent{Identity: Identity{User: "u", ConnID: "c1", ClientIP: "192.0.2.1"}, Channel: "game:1", Payload: []byte(`{"n":1}`)})
	if err != nil || string(r.Payload) != `{"n":2}` {
		t.Fatalf("reply %+v %v", r, err)
	}
	id, kind, err := VerifyRequest(got, gotBody, testKey, time.Minute)
	if err != nil || id.User != "u" || id.ConnID != "c1" || kind != KindPublish {
		t.Fatalf("verify: %+v %q %v", id, kind, err)
	}
	tampered := bytes.Replace(gotBody, []byte(`"n":1`), []byte(`"n":7`), 1)
	if _, _, err := VerifyRequest(got, tampered, testKey, time.Minute); !errors.Is(err, ErrBadBodySignature) {
		t.Fatalf("tampered body: %v, want ErrBadBodySignature", err)
	}
	big = true
	if _, err := h.Publish(context.Background(), PublishEvent{Payload: []byte(`1`)}); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("oversized response: %v, want ErrBadResponse", err)
	}
}

func TestSanitizeReason(t *testing.T) {
	if got := SanitizeReason("bad\r\nmove é"); got != "bad??move ??" {
		t.Fatalf("got %q", got)
	}
	if got := SanitizeReason(strings.Repeat("x", 500)); len(got) != MaxReasonLen {
		t.Fatalf("len %d", len(got))
	}
}

// A backend closed while a call is in flight (a reload replaced its hook)
// lets the call finish, and a late call made through it after Close (a check
// that read the old configuration just before the swap) still works; once the
// last of them ends, their connections are dropped: none, and no connection
// goroutine, outlives a closed backend.
func TestHTTPCloseDuringCall(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	entered, release := make(chan struct{}), make(chan struct{})
	var requests, open atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if requests.Add(1) == 1 {
			close(entered)
			<-release
		}
		_, _ = io.WriteString(w, `{"allow":true}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	defer srv.Close()
	b, err := NewHTTP(HTTPOptions{URL: srv.URL, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(KindSubscribe, b, Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	call := func() error {
		_, err := h.Subscribe(context.Background(), SubscribeEvent{Identity: Identity{User: "u", ConnID: "c"}, Channel: "x"})
		return err
	}
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not reach the backend")
	}
	b.Close()
	if err := call(); err != nil { // on a second connection, the first is busy
		t.Fatalf("a call after Close failed: %v", err)
	}
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a call in flight at Close failed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call in flight did not finish")
	}
	deadline := time.Now().Add(10 * time.Second)
	for open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections left open after the last call of a closed backend", open.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv.Close()
	goleak.VerifyNone(t, leaks)
}
