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

// FuncAnnotator adapts a function to Annotator.
type FuncAnnotator func(client netip.Addr, appliance string) Annotation

// Annotate calls f.
func (f FuncAnnotator) Annotate(client netip.Addr, appliance string) Annotation {
	return f(client, appliance)
}
