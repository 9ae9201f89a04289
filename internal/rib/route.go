// Package rib provides the routing information the steering engine reads:
// per-appliance route sets with their BGP attributes, a global prefix table
// merged from them, immutable snapshots for lookups that never lock, and
// importers for MRT dumps and plain prefix lists.
package rib

import "net/netip"

// Origin is the BGP ORIGIN attribute; lower is preferred.
type Origin uint8

// ORIGIN attribute values (RFC 4271 section 5.1.1).
const (
	OriginIGP        Origin = 0
	OriginEGP        Origin = 1
	OriginIncomplete Origin = 2
)

// Route is one path to a prefix as heard by one BGP speaker. It is a value
// type: copies are independent except for the AS path slice, which must be
// treated as read-only once the route is published.
type Route struct {
	Prefix netip.Prefix `json:"prefix"`
	Attrs
}

// Attrs are the path attributes of a route that the steering order
// compares. A Table interns them: all candidates with equal attributes
// share one *Attrs, as a router shares attribute sets between prefixes, so
// a full table costs a pointer per route rather than a copy of its
// attributes.
type Attrs struct {
	NextHop   netip.Addr `json:"next_hop,omitzero"`
	LocalPref uint32     `json:"local_pref"`
	ASPath    []uint32   `json:"as_path,omitempty"`
	Origin    Origin     `json:"origin"`
	MED       uint32     `json:"med"`
	// PeerASN and PeerRouterID identify the router the route was heard from;
	// the router id is the last BGP tie-break.
	PeerASN      uint32     `json:"peer_asn,omitempty"`
	PeerRouterID netip.Addr `json:"peer_router_id,omitzero"`
	// EBGP is true when the route was learned over an external session.
	EBGP bool `json:"ebgp"`
}

// Candidate is one appliance that may serve a prefix, with the attributes
// of the route it heard. Attrs is shared with every other candidate of the
// table that has equal attributes and must not be modified.
type Candidate struct {
	Appliance string `json:"appliance"`
	Attrs     *Attrs `json:"route"`
}

// Equal reports whether two routes have the same prefix and attributes
// (Route is not comparable with == because of the AS path slice).
func (r Route) Equal(o Route) bool { return r.Prefix == o.Prefix && r.Attrs.Equal(&o.Attrs) }
