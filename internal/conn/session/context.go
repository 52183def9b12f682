package session

import (
	"context"
	"time"
)

// The session is the context its messages are handled under (the pipeline,
// Router.Handle, the raw router, strikes, token refresh): cancelled when the
// session ends. It is its own context rather than holding a
// context.WithCancel because every open connection would pay for one (≈ 100
// bytes, and 24 in the session) while few ever look at it: the channel and
// the cancel functions of derived contexts are made only when asked for
// (ctxState), and an idle connection holds nothing for them.
//
// Derived contexts (context.WithTimeout(s.Context(), ...)) do not need a
// goroutine each to follow it: sessionCtx has the AfterFunc method that
// package context looks for on a parent that is not one of its own.
type sessionCtx Session

// ctxState is the part of the session's context made on first use (in
// Session.rare), guarded by Session.mu.
type ctxState struct {
	done   chan struct{}
	afters map[*func()]struct{} // derived contexts' cancels, run at the end
}

// Context returns the session's context, cancelled when the session ends.
func (s *Session) Context() context.Context { return (*sessionCtx)(s) }

func (c *sessionCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *sessionCtx) Value(any) any               { return nil }

// Err returns context.Canceled once the session has ended.
func (c *sessionCtx) Err() error {
	if (*Session)(c).flags.Load()&flagCtxDone != 0 {
		return context.Canceled
	}
	return nil
}

// Done returns a channel closed when the session ends.
func (c *sessionCtx) Done() <-chan struct{} {
	s := (*Session)(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.ctxStateLocked()
	if x.done == nil {
		x.done = make(chan struct{})
		if s.flags.Load()&flagCtxDone != 0 {
			close(x.done)
		}
	}
	return x.done
}

// AfterFunc arranges for f to run when the session ends (at once, on a
// goroutine of its own, if it has ended). Package context calls it for every
// context derived from the session's, with that context's cancel as f; stop
// unregisters f and reports whether it had not run yet.
func (c *sessionCtx) AfterFunc(f func()) (stop func() bool) {
	s := (*Session)(c)
	s.mu.Lock()
	if s.flags.Load()&flagCtxDone != 0 {
		s.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	x := s.ctxStateLocked()
	if x.afters == nil {
		x.afters = make(map[*func()]struct{})
	}
	key := &f
	x.afters[key] = struct{}{}
	s.mu.Unlock()
	return func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, ok := x.afters[key]
		delete(x.afters, key)
		return ok
	}
}

func (s *Session) ctxStateLocked() *ctxState { return &s.rareLocked().ctx }

// cancelContext ends the session's context: Err returns context.Canceled,
// Done's channel is closed and the contexts derived from it are cancelled.
func (s *Session) cancelContext() {
	s.mu.Lock()
	if s.flags.Or(flagCtxDone)&flagCtxDone != 0 {
		s.mu.Unlock()
		return
	}
	var afters map[*func()]struct{}
	if s.rare != nil {
		x := &s.rare.ctx
		afters, x.afters = x.afters, nil
		if x.done != nil {
			close(x.done)
		}
	}
	s.mu.Unlock()
	// Outside the lock: a derived context's cancel takes its own locks and
	// calls its stop, which takes Session.mu.
	for f := range afters {
		(*f)()
	}
}

var _ context.Context = (*sessionCtx)(nil)
