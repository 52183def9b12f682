package wsgatetest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// RequireExternal reports whether tests must fail (not skip) when Redis or
// Chromium is missing: the README's test command sets WSGATETEST_REQUIRE_EXTERNAL.
func RequireExternal() bool {
	return os.Getenv("WSGATETEST_REQUIRE_EXTERNAL") == "1" || os.Getenv("CI") == "true"
}

// Browser starts headless Chromium (Debian's /usr/bin/chromium) for the test and
// returns a context for its first tab. It skips when Chromium is missing, unless
// RequireExternal, then it fails.
func Browser(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if RequireExternal() {
			t.Fatal("chromium not found (apt-get install -y chromium)")
		}
		t.Skip("chromium not installed; `bash scripts/test.sh` installs it")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("ignore-certificate-errors", true), // the test server's certificate is self-signed
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium")),
		chromedp.WindowSize(1280, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// ArtifactDir is where tests write screenshots: $WSGATETEST_ARTIFACTS or a temp dir.
func ArtifactDir(t testing.TB) string {
	if d := os.Getenv("WSGATETEST_ARTIFACTS"); d != "" {
		_ = os.MkdirAll(d, 0o755)
		return d
	}
	return t.TempDir()
}
