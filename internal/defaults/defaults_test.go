package defaults

import (
	"testing"
	"time"
)

func TestPositive(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{{0, 5}, {-1, 5}, {3, 3}} {
		v := tc.in
		Positive(&v, 5)
		if v != tc.want {
			t.Errorf("Positive(%v) = %v, want %v", tc.in, v, tc.want)
		}
	}
}

func TestNow(t *testing.T) {
	var now func() time.Time
	Now(&now)
	if now == nil || now().IsZero() {
		t.Fatal("no clock set")
	}
	fixed := func() time.Time { return time.Unix(1, 0) }
	now = fixed
	Now(&now)
	if !now().Equal(time.Unix(1, 0)) {
		t.Fatal("a given clock was replaced")
	}
}
