package ban_test

import (
	"strings"
	"testing"

	"github.com/wsgate/wsgate/internal/state/ban"
)

// FuzzIPSubject: client addresses come from the network (and from X-Forwarded-For
// via trusted proxies); IPSubject must never panic and must be idempotent on its
// canonical form, or one client could hold two ban subjects.
func FuzzIPSubject(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "::ffff:1.2.3.4", "2001:db8::1", "fe80::1%eth0", "", "1.2.3.4:80", "[::1]", "::ffff:%", "01.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ip string) {
		s := ban.IPSubject(ip)
		rest, ok := strings.CutPrefix(s, "ip:")
		if !ok {
			t.Fatalf("IPSubject(%q) = %q lacks prefix", ip, s)
		}
		if again := ban.IPSubject(rest); again != s {
			t.Fatalf("not idempotent: %q -> %q -> %q", ip, s, again)
		}
	})
}
