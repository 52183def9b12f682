package wsgatetest

import (
	"os"
	"path/filepath"
)

// IsolateUserCache points this test process (and the processes it starts) at
// a private user cache directory, so that dev mode's certificate
// (os.UserCacheDir()/wsgate/dev.pem) is not shared with other test packages
// that go test runs in parallel: one package's cleanup removing it would break
// another's running test. The Go build cache stays where it was (GOCACHE is
// pinned first), so `go build`/`go run` from tests stay incremental. Call it
// from TestMain; run the returned function after m.Run.
func IsolateUserCache() (restore func()) {
	if os.Getenv("GOCACHE") == "" {
		if d, err := os.UserCacheDir(); err == nil {
			_ = os.Setenv("GOCACHE", filepath.Join(d, "go-build"))
		}
	}
	dir, err := os.MkdirTemp("", "wsgate-test-cache-")
	if err != nil {
		return func() {}
	}
	_ = os.Setenv("XDG_CACHE_HOME", dir)
	return func() { _ = os.RemoveAll(dir) }
}
