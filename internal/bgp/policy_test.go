package bgp

import (
	"net/netip"
	"testing"
)

func TestImportPolicy(t *testing.T) {
	strict := importPolicy{}
	lab := importPolicy{allow: mustPrefixes("127.0.0.0/8", "2001:db8::/32")}
	tests := []struct {
		policy importPolicy
		fam    Family
		prefix string
		want   RejectReason
	}{
		{strict, FamilyIPv4, "8.8.8.0/24", ""},
		{strict, FamilyIPv4, "185.0.0.0/8", ""},
		{strict, FamilyIPv4, "0.0.0.0/0", RejectDefaultRoute},
		{lab, FamilyIPv4, "0.0.0.0/0", RejectDefaultRoute},
		{strict, FamilyIPv4, "8.8.8.0/25", RejectTooSpecific},
		{strict, FamilyIPv4, "8.8.8.8/32", RejectTooSpecific},
		{lab, FamilyIPv4, "127.64.1.0/25", RejectTooSpecific}, // allow does not lift the length limit
		{strict, FamilyIPv4, "0.1.0.0/16", RejectBogon},
		{strict, FamilyIPv4, "10.0.0.0/8", RejectBogon},
		{strict, FamilyIPv4, "10.20.0.0/16", RejectBogon},
		{strict, FamilyIPv4, "100.64.0.0/10", RejectBogon},
		{strict, FamilyIPv4, "100.127.0.0/16", RejectBogon},
		{strict, FamilyIPv4, "100.128.0.0/16", ""},
		{strict, FamilyIPv4, "127.64.0.0/16", RejectBogon},
		{lab, FamilyIPv4, "127.64.0.0/16", ""},
		{lab, FamilyIPv4, "126.0.0.0/7", RejectBogon}, // covers 127/8 but is not inside the allowed range
		{strict, FamilyIPv4, "169.254.0.0/16", RejectBogon},
		{strict, FamilyIPv4, "172.16.0.0/12", RejectBogon},
		{strict, FamilyIPv4, "172.31.0.0/16", RejectBogon},
		{strict, FamilyIPv4, "172.32.0.0/16", ""},
		{strict, FamilyIPv4, "192.0.0.0/24", RejectBogon},
		{strict, FamilyIPv4, "192.0.2.0/24", RejectBogon},
		{strict, FamilyIPv4, "192.168.1.0/24", RejectBogon},
		{strict, FamilyIPv4, "198.18.0.0/15", RejectBogon},
		{strict, FamilyIPv4, "198.19.5.0/24", RejectBogon},
		{strict, FamilyIPv4, "198.20.0.0/16", ""},
		{strict, FamilyIPv4, "198.51.100.0/24", RejectBogon},
		{strict, FamilyIPv4, "203.0.113.0/24", RejectBogon},
		{strict, FamilyIPv4, "224.0.0.0/4", RejectBogon},
		{strict, FamilyIPv4, "240.0.0.0/4", RejectBogon},
		{strict, FamilyIPv4, "192.0.0.0/8", RejectBogon}, // covering announcement overlaps bogons
		{strict, FamilyIPv4, "2001:db8::/32", RejectWrongFamily},

		{strict, FamilyIPv6, "2a00:1450::/32", ""},
		{strict, FamilyIPv6, "2001:4860::/32", ""},
		{strict, FamilyIPv6, "::/0", RejectDefaultRoute},
		{strict, FamilyIPv6, "2a00:1450::/49", RejectTooSpecific},
		{strict, FamilyIPv6, "2a00:1450::/64", RejectTooSpecific},
		{strict, FamilyIPv6, "::/8", RejectBogon},
		{strict, FamilyIPv6, "100::/64", RejectTooSpecific},
		{strict, FamilyIPv6, "100::/48", RejectBogon},
		{strict, FamilyIPv6, "2001:db8::/32", RejectBogon},
		{strict, FamilyIPv6, "2001:db8:1::/48", RejectBogon},
		{lab, FamilyIPv6, "2001:db8:1::/48", ""},
		{lab, FamilyIPv6, "2001:db8::/32", ""},
		{strict, FamilyIPv6, "fc00::/7", RejectBogon},
		{strict, FamilyIPv6, "fd12:3456::/32", RejectBogon},
		{strict, FamilyIPv6, "fe80::/10", RejectBogon},
		{strict, FamilyIPv6, "ff02::/16", RejectBogon},
		{strict, FamilyIPv6, "4000::/16", RejectBogon}, // outside 2000::/3
		{strict, FamilyIPv6, "3fff:ffff::/32", ""},
		{strict, FamilyIPv6, "2000::/2", RejectBogon}, // covers more than 2000::/3
		{strict, FamilyIPv6, "8.8.8.0/24", RejectWrongFamily},
	}
	for _, tt := range tests {
		p := netip.MustParsePrefix(tt.prefix)
		if got := tt.policy.check(tt.fam, p); got != tt.want {
			t.Errorf("check(%s, %s) with allow %v = %q, want %q", tt.fam, p, tt.policy.allow, got, tt.want)
		}
	}
}
