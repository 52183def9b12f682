package session

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/outbox"
	"github.com/wsgate/wsgate/internal/edge/auth"
)

func bareSession() *Session {
	return New(Params{ID: NewID(), IP: netip.MustParseAddr("192.0.2.1"),
		Identity: auth.Identity{Subject: "alice"}}, &Options{Outbox: outbox.Options{MaxMessages: 16, MaxBytes: 1 << 16}}, &Deps{})
}

// The session's context behaves as a context.WithCancel of Background
// cancelled at the session's end: Err, Done, no values, no deadline; the
// contexts derived from it are cancelled with it, and a derived context that
// ends first leaves nothing registered behind.
func TestSessionContext(t *testing.T) {
	s := bareSession()
	if sp := s.Subprotocol(); sp != "" { // before Attach: no connection yet
		t.Fatalf("Subprotocol before Attach = %q", sp)
	}
	ctx := s.Context()
	if err := ctx.Err(); err != nil {
		t.Fatalf("Err before the end = %v", err)
	}
	if _, ok := ctx.Deadline(); ok {
		t.Fatal("the session's context has a deadline")
	}
	if v := ctx.Value("k"); v != nil {
		t.Fatalf("Value = %v", v)
	}
	if s.rare != nil {
		t.Fatal("context state made before anything asked for it")
	}

	// A derived context that ends on its own unregisters its cancel.
	short, cancelShort := context.WithTimeout(ctx, time.Hour)
	cancelShort()
	if errors.Is(short.Err(), context.Canceled) == false {
		t.Fatalf("short.Err = %v", short.Err())
	}
	if n := len(s.rare.ctx.afters); n != 0 {
		t.Fatalf("%d cancels registered after the derived context ended, want 0", n)
	}

	derived, cancel := context.WithCancel(ctx)
	defer cancel()
	timed, cancelTimed := context.WithTimeout(ctx, time.Hour)
	defer cancelTimed()
	stopped := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { close(stopped) })
	done := ctx.Done()
	select {
	case <-done:
		t.Fatal("Done closed before the end")
	default:
	}

	s.cancelContext()
	s.cancelContext() // idempotent
	for name, c := range map[string]context.Context{"session": ctx, "derived": derived, "timed": timed} {
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s context not done after the session's end", name)
		}
		if !errors.Is(c.Err(), context.Canceled) || !errors.Is(context.Cause(c), context.Canceled) {
			t.Fatalf("%s: Err = %v, Cause = %v", name, c.Err(), context.Cause(c))
		}
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("context.AfterFunc's function did not run at the end")
	}
	if stop() {
		t.Fatal("stop reported true after the function ran")
	}
	// After the end: a new Done is closed, a new derived context is done at once.
	select {
	case <-ctx.Done():
	default:
		t.Fatal("Done not closed after the end")
	}
	late, cancelLate := context.WithCancel(ctx)
	defer cancelLate()
	select {
	case <-late.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context derived after the end is not done")
	}
}

// Through the real path: the session's context ends when its connection does.
func TestSessionContextEndsWithConnection(t *testing.T) {
	conn, _, sessions := dialSession(t)
	go conn.Serve()
	var s *Session
	select {
	case s = <-sessions:
	case <-time.After(10 * time.Second):
		t.Fatal("no session")
	}
	ctx, cancel := context.WithTimeout(s.Context(), time.Minute)
	defer cancel()
	_ = conn.WriteClose(1000, "bye")
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("derived context not done 10 s after the client closed")
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("Err = %v, want context.Canceled", ctx.Err())
	}
}
