// Package leak is the tests' one goroutine-leak check: go.uber.org/goleak
// with the options wsgate's tests share. A package whose tests all end every
// goroutine they start uses goleak.VerifyTestMain in its TestMain; a test that
// must check its own goroutines (because other tests in the package keep
// servers running, or the package's TestMain does something else) calls
// [Check]. It imports nothing of wsgate, so any package's internal tests can
// use it.
package leak

import (
	"testing"

	"go.uber.org/goleak"
)

// HTTPKeepAlive ignores the goroutines of HTTP keep-alive connections (the
// client transport's read and write loops and the server's per-connection
// loop): they end when their server or transport is closed, which is not
// what a test of its own component checks.
var HTTPKeepAlive = []goleak.Option{
	goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
}

// Check fails t, when it and its cleanups have ended, if a goroutine started
// after Check is still running (goleak retries for a while, so goroutines on
// their way out pass). Call it first, so that it runs after the cleanups the
// test registers later (test servers close then). opts add ignores, such as
// HTTPKeepAlive.
func Check(t testing.TB, opts ...goleak.Option) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, append([]goleak.Option{before}, opts...)...) })
}
