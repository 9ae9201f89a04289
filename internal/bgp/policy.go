package bgp

import "net/netip"

// RejectReason says why the import policy dropped a route. The values are
// the `reason` label of ocdn_bgp_routes_rejected_total.
type RejectReason string

// Reasons the import policy rejects a route.
const (
	RejectDefaultRoute RejectReason = "default_route"
	RejectBogon        RejectReason = "bogon"
	RejectTooSpecific  RejectReason = "too_specific"
	// RejectWrongFamily is a route whose family differs from the session's
	// configured family; GoBGP only negotiates the configured family, so this
	// guards against a misbehaving peer rather than a normal case.
	RejectWrongFamily RejectReason = "wrong_family"
)

// rejectReasons lists every reason so metrics export zeros too.
var rejectReasons = []RejectReason{RejectDefaultRoute, RejectBogon, RejectTooSpecific, RejectWrongFamily}

// Longest prefixes accepted: the usual Internet filtering norm; anything
// longer is either a leak or traffic engineering the appliance must not
// steer by.
const (
	maxIPv4Len = 24
	maxIPv6Len = 48
)

var (
	bogonsV4 = mustPrefixes(
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	)
	bogonsV6 = mustPrefixes(
		"::/8", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8",
	)
	// Only global unicast (2000::/3) is allocated for the public Internet.
	globalUnicastV6 = netip.MustParsePrefix("2000::/3")
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// importPolicy is the appliance's import filter. It is applied in our
// translation layer rather than as a GoBGP policy so that it can be unit
// tested without a BGP session, so that rejections are counted per reason,
// and so that max-prefix can count accepted (post-policy) prefixes exactly.
// It only looks at the prefix, so a prefix's verdict never changes between
// an announcement and its withdrawal.
type importPolicy struct {
	allow []netip.Prefix
}

// check returns "" when p is accepted on a session of family fam.
func (ip importPolicy) check(fam Family, p netip.Prefix) RejectReason {
	if (fam == FamilyIPv4) != p.Addr().Is4() {
		return RejectWrongFamily
	}
	if p.Bits() == 0 {
		return RejectDefaultRoute
	}
	if p.Addr().Is4() && p.Bits() > maxIPv4Len || p.Addr().Is6() && p.Bits() > maxIPv6Len {
		return RejectTooSpecific
	}
	if ip.isBogon(p) && !ip.allowed(p) {
		return RejectBogon
	}
	return ""
}

// isBogon reports whether p overlaps a martian range: a covering announcement
// (say 0.0.0.0/1) would otherwise steer bogon clients too.
func (importPolicy) isBogon(p netip.Prefix) bool {
	list := bogonsV4
	if p.Addr().Is6() {
		if !globalUnicastV6.Contains(p.Addr()) || p.Bits() < globalUnicastV6.Bits() {
			return true
		}
		list = bogonsV6
	}
	for _, b := range list {
		if b.Overlaps(p) {
			return true
		}
	}
	return false
}

// allowed reports whether p lies entirely inside an AllowPrefixes range.
func (ip importPolicy) allowed(p netip.Prefix) bool {
	for _, a := range ip.allow {
		if a.Bits() <= p.Bits() && a.Contains(p.Addr()) {
			return true
		}
	}
	return false
}
