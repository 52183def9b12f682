// Package redistest starts a real redis-server for tests: on a free loopback
// port, in t.TempDir(), without persistence unless a test asks for a snapshot
// (Save), and able to stop and start again on the same port, empty or from that
// snapshot, so that tests can fault Redis under a live client.
//
// When redis-server is not installed, Start skips the test with a message, or
// fails it when WSGATETEST_REQUIRE_EXTERNAL=1 (as CI sets).
package redistest
