package limit

import (
	"net/netip"
	"testing"
)

func TestIPPrefixesKey(t *testing.T) {
	cases := []struct {
		p    IPPrefixes
		addr string
		want string
	}{
		{IPPrefixes{}, "203.0.113.7", "203.0.113.7"},
		{IPPrefixes{}, "::ffff:203.0.113.7", "203.0.113.7"},
		{IPPrefixes{}, "2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{IPPrefixes{}, "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{IPPrefixes{}, "fe80::1%eth0", "fe80::/64"},
		{IPPrefixes{V4: 24, V6: 56}, "203.0.113.7", "203.0.113.0/24"},
		{IPPrefixes{V4: 24, V6: 56}, "2001:db8:1:2ff::1", "2001:db8:1:200::/56"},
		{IPPrefixes{V6: 128}, "2001:db8::1", "2001:db8::1"},
	}
	for _, c := range cases {
		if got := c.p.Key(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("%+v.Key(%s) = %q, want %q", c.p, c.addr, got, c.want)
		}
	}
	if got := (IPPrefixes{}).Key(netip.Addr{}); got != "" {
		t.Errorf("invalid address keyed %q", got)
	}
	for _, bad := range []IPPrefixes{{V4: 7}, {V4: 33}, {V6: 15}, {V6: 129}, {V4: -1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}
