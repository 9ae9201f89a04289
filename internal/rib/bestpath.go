package rib

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Validation errors, wrapped by Route.Validate with the offending value.
var (
	ErrInvalidPrefix = errors.New("invalid prefix")
	ErrHostBits      = errors.New("prefix has host bits set")
	ErrOrigin        = errors.New("invalid origin")
)

// Validate reports whether r can be stored in a Table. Prefixes must be
// canonical (no host bits) so that the same route heard twice lands on the
// same table entry.
func (r Route) Validate() error {
	p := r.Prefix
	switch {
	case !p.IsValid():
		return fmt.Errorf("route %v: %w", p, ErrInvalidPrefix)
	case p.Masked() != p:
		return fmt.Errorf("route %v: %w (want %v)", p, ErrHostBits, p.Masked())
	case r.Origin > OriginIncomplete:
		return fmt.Errorf("route %v: %w %d", p, ErrOrigin, r.Origin)
	}
	return nil
}

// Compare orders two routes to the same prefix by the BGP decision process
// the steering engine uses; see CompareAttrs.
func Compare(a, b Route) int { return CompareAttrs(&a.Attrs, &b.Attrs) }

// CompareAttrs orders the attributes of two routes to the same prefix:
// higher LOCAL_PREF, shorter AS path, lower ORIGIN, lower MED, eBGP over
// iBGP, lower router id. It returns a negative number when a is preferred,
// positive when b is, zero when BGP cannot tell them apart.
//
// MED is compared across neighbour ASes (as with "always-compare-med"):
// the routes come from different appliances, each with its own ISP session,
// so the per-neighbour rule of RFC 4271 would leave most pairs unordered.
// AS path length counts every ASN of the flattened path, AS_SET members
// included, because Attrs does not keep segment boundaries.
func CompareAttrs(a, b *Attrs) int {
	if a == b {
		return 0
	}
	if c := cmp.Compare(b.LocalPref, a.LocalPref); c != 0 {
		return c
	}
	if c := cmp.Compare(len(a.ASPath), len(b.ASPath)); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Origin, b.Origin); c != 0 {
		return c
	}
	if c := cmp.Compare(a.MED, b.MED); c != 0 {
		return c
	}
	if a.EBGP != b.EBGP {
		if a.EBGP {
			return -1
		}
		return 1
	}
	return a.PeerRouterID.Compare(b.PeerRouterID)
}

// compareCandidates is CompareAttrs with the appliance id as the final
// key, so that candidate lists are deterministic whatever order updates
// arrived in.
func compareCandidates(a, b Candidate) int {
	if c := CompareAttrs(a.Attrs, b.Attrs); c != 0 {
		return c
	}
	return cmp.Compare(a.Appliance, b.Appliance)
}

// Equal reports whether a and b are identical attribute sets.
func (a *Attrs) Equal(b *Attrs) bool {
	return a == b || a.NextHop == b.NextHop && a.LocalPref == b.LocalPref &&
		a.Origin == b.Origin && a.MED == b.MED && a.PeerASN == b.PeerASN &&
		a.PeerRouterID == b.PeerRouterID && a.EBGP == b.EBGP && slices.Equal(a.ASPath, b.ASPath)
}
