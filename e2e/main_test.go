package e2e

import (
	"os"
	"testing"

	"github.com/wsgate/wsgate/internal/tools/wsgatetest"
)

// TestMain gives the package its own user cache directory: dev-mode tests
// create and remove the dev certificate there, which must not race with the
// cmd/wsgate tests go test runs at the same time.
func TestMain(m *testing.M) {
	restore := wsgatetest.IsolateUserCache()
	code := m.Run()
	restore()
	os.Exit(code)
}
