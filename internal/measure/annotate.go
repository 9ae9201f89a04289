package measure

import "net/netip"

// Annotator tells the ingester where a report came from, so stored rows can
// be grouped by network without every analysis re-deriving it. The control
// plane implements it from its route tables (longest-prefix match of the
// client address; the appliance's site from its inventory).
//
// Annotate is called once per distinct appliance of a report, on the
// request path, so it must be cheap and safe for concurrent use.
type Annotator interface {
	Annotate(client netip.Addr, appliance string) Annotation
}

// Annotation is what an Annotator knows about a client and an appliance.
type Annotation struct {
	// ClientPrefix is the client's /24 (IPv4) or /48 (IPv6), the unit
	// results are aggregated and anonymised by. Empty means DefaultPrefix.
	ClientPrefix string
	// PrefixGroup is the routed prefix (or other group) the client belongs
	// to, e.g. the ISP announcement that steering matched. Empty means
	// the same as ClientPrefix.
	PrefixGroup string
	ASN         uint32
	ISP         string
	// Site is the site of the appliance; empty keeps the site the client
	// reported for the pulse.
	Site string
	// Arm is the steering-experiment arm the server assigns the client,
	// empty when no experiment runs. It is stored in the rows' context as
	// "assigned_arm", beside the "arm" the report names, so an analysis
	// can tell a report whose arm is not its client's (a stale recipe, a
	// forged context) and keep it out of every arm.
	Arm string
}

// DefaultPrefix returns the /24 of an IPv4 address or the /48 of an IPv6
// address, as a string ("198.51.100.0/24").
func DefaultPrefix(a netip.Addr) string {
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// ResolverJoiner joins a dns pulse with the authoritative DNS server's
// log of the probe name it resolved, by nonce: the control plane
// implements it from its DNS server's probe log. It runs on the upload
// path, once per dns pulse, so it must be cheap and safe for concurrent
// use.
type ResolverJoiner interface {
	JoinResolver(client netip.Addr, nonce string) (ResolverJoin, bool)
}

// ResolverJoin is what the authoritative server saw of one probe name,
// and how far the resolver that asked is from the client.
type ResolverJoin struct {
	// Resolver is the address the query came from: the client's
	// recursive resolver (or its egress), not the client.
	Resolver string `json:"resolver"`
	// ResolverASN is the AS the control plane's routes put the resolver
	// in (0 when unknown).
	ResolverASN uint32 `json:"resolver_asn,omitempty"`
	// ECS is the client subnet the resolver passed on (EDNS Client
	// Subnet), empty when it sent none.
	ECS string `json:"ecs,omitempty"`
	// Distance is how far the resolver is from the client, one of the
	// Distance* values.
	Distance string `json:"distance"`
	// Queries is how many queries the server logged for the name (A and
	// AAAA, retries, TCP after truncation).
	Queries int `json:"queries"`
}

// Resolver distances, nearest first. They are network distances from the
// control plane's own tables, not geography: see docs/dns.md.
const (
	// DistanceSamePrefix: the resolver is in the client's routed prefix
	// (the announcement steering matched), or its /24 (/48) when the
	// client is not routed.
	DistanceSamePrefix = "same_prefix"
	// DistanceSameAS: another prefix of the client's own AS.
	DistanceSameAS = "same_as"
	// DistanceOtherAS: a prefix of another AS the routes know.
	DistanceOtherAS = "other_as"
	// DistanceUnknown: the resolver is in no prefix the control plane
	// routes (a public resolver outside every ISP it serves, say).
	DistanceUnknown = "unknown"
)

// FuncAnnotator adapts a function to Annotator.
type FuncAnnotator func(client netip.Addr, appliance string) Annotation

// Annotate calls f.
func (f FuncAnnotator) Annotate(client netip.Addr, appliance string) Annotation {
	return f(client, appliance)
}
