package ticket

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func FuzzRedeemFormat(f *testing.F) {
	f.Add("")
	f.Add(strings.Repeat("A", Len))
	f.Add(strings.Repeat("-", Len-1) + "=")
	f.Add("abc%00def")
	f.Add(strings.Repeat("_", Len+1))
	f.Fuzz(func(t *testing.T, s string) {
		spy := &spyStore{}
		iss := &Issuer{Store: spy}
		_, err := iss.Redeem(context.Background(), s)
		if ValidFormat(s) {
			if len(s) != Len || !errors.Is(err, ErrNotFound) || spy.takes.Load() != 1 {
				t.Fatalf("valid %q: err=%v takes=%d", s, err, spy.takes.Load())
			}
			return
		}
		if !errors.Is(err, ErrMalformed) || spy.takes.Load() != 0 {
			t.Fatalf("invalid %q reached the store or wrong error %v", s, err)
		}
	})
}
